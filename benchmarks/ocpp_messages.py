"""OCPP payload decoding: silkgate's generated msgspec Structs vs the `ocpp` library's way.

For Heartbeat, BootNotification and MeterValues (10 sampled values) requests of OCPP 1.6 and
2.0.1, the time per payload of:

* ``impl: silkgate``: ``gateway.ocpp.messages.decode_request`` (one msgspec decode into the
  generated Struct, every schema constraint checked);
* ``impl: ocpp-library``: ``json.loads`` then ``jsonschema`` validation against the same official
  schema, as the ``ocpp`` library's ChargePoint does for every incoming message (with its
  validators built once and cached, as the library caches them).

Prints JSON lines: ``bench: ocpp-decode-<version>-<action>``, ``per_s``, ``us``, and for ours
``vs: ocpp-library`` with ``ratio`` (ours / theirs, messages per second, same run). Best of
``--repeat`` rounds of ``--seconds`` each.

    .venv/bin/python benchmarks/ocpp_messages.py [--seconds 0.5] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # dev extra, as the ocpp package

from gateway.ocpp.messages import decode_request

# Run as a script, this folder is sys.path[0], and benchmarks/ocpp.py would shadow the ocpp
# package whose schemas files("ocpp") reads.
_here = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _here]

STAMP = "2026-11-27T08:00:00.123Z"


def _meter_values_16() -> dict[str, Any]:
    sampled = [
        {"value": f"{1000 + i}.5", "measurand": m, "unit": u, "context": "Sample.Periodic"}
        for i, (m, u) in enumerate(
            [("Energy.Active.Import.Register", "Wh"), ("Power.Active.Import", "W")] * 5
        )
    ]
    return {
        "connectorId": 1,
        "transactionId": 42,
        "meterValue": [{"timestamp": STAMP, "sampledValue": sampled}],
    }


def _meter_values_201() -> dict[str, Any]:
    sampled = [
        {
            "value": 1000.5 + i,
            "measurand": m,
            "context": "Sample.Periodic",
            "unitOfMeasure": {"unit": u},
        }
        for i, (m, u) in enumerate(
            [("Energy.Active.Import.Register", "Wh"), ("Power.Active.Import", "W")] * 5
        )
    ]
    return {"evseId": 1, "meterValue": [{"timestamp": STAMP, "sampledValue": sampled}]}


PAYLOADS: dict[tuple[str, str], dict[str, Any]] = {
    ("ocpp1.6", "Heartbeat"): {},
    ("ocpp1.6", "BootNotification"): {
        "chargePointVendor": "Silkgate",
        "chargePointModel": "DC-180",
        "chargePointSerialNumber": "SG-000123",
        "firmwareVersion": "1.4.2",
        "iccid": "8986001234567890123",
        "imsi": "460001234567890",
    },
    ("ocpp1.6", "MeterValues"): _meter_values_16(),
    ("ocpp2.0.1", "Heartbeat"): {},
    ("ocpp2.0.1", "BootNotification"): {
        "reason": "PowerUp",
        "chargingStation": {
            "model": "DC-180",
            "vendorName": "Silkgate",
            "serialNumber": "SG-000123",
            "firmwareVersion": "1.4.2",
            "modem": {"iccid": "8986001234567890123", "imsi": "460001234567890"},
        },
    },
    ("ocpp2.0.1", "MeterValues"): _meter_values_201(),
}


def _schema(version: str, action: str) -> dict[str, Any]:
    folder = "v16" if version == "ocpp1.6" else "v201"
    name = action if version == "ocpp1.6" else f"{action}Request"
    text = files("ocpp").joinpath(folder, "schemas", f"{name}.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _rate(fn: Callable[[], object], seconds: float, repeat: int) -> float:
    """Best calls/s over ``repeat`` rounds of about ``seconds`` each."""
    best = 0.0
    batch = 100
    for _ in range(repeat):
        n = 0
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            for _ in range(batch):
                fn()
            n += batch
        best = max(best, n / elapsed)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.5)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for (version, action), payload in PAYLOADS.items():
        raw = json.dumps(payload).encode()
        schema = _schema(version, action)
        validator = jsonschema.validators.validator_for(schema)(schema)
        decode_request(version, action, raw)  # valid for both before timing
        validator.validate(json.loads(raw))

        def ours(version: str = version, action: str = action, raw: bytes = raw) -> object:
            return decode_request(version, action, raw)

        def theirs(validator: Any = validator, raw: bytes = raw) -> object:
            data = json.loads(raw)
            validator.validate(data)
            return data

        their_rate = _rate(theirs, args.seconds, args.repeat)
        our_rate = _rate(ours, args.seconds, args.repeat)
        bench = f"ocpp-decode-{version.removeprefix('ocpp')}-{action}"
        common = {"bytes": len(raw)}
        print(
            json.dumps(
                {
                    "bench": bench,
                    "impl": "ocpp-library",
                    "per_s": round(their_rate),
                    "us": round(1e6 / their_rate, 2),
                    **common,
                }
            )
        )
        print(
            json.dumps(
                {
                    "bench": bench,
                    "impl": "silkgate",
                    "per_s": round(our_rate),
                    "us": round(1e6 / our_rate, 2),
                    "vs": "ocpp-library",
                    "ratio": round(our_rate / their_rate, 1),
                    **common,
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()

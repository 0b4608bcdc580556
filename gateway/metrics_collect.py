"""Reads the counters the gateway's components keep anyway (pipeline, spool, TCP listeners and
their ingestors, the OCPP endpoint, the MQTT adapter and intake, the forwarders) into a
:class:`~gateway.metrics.Snapshot`. Called about once a second and on every scrape; nothing
here runs per message."""

from __future__ import annotations

import os
import resource
import time
from typing import TYPE_CHECKING, Final, Literal

from gateway import __version__
from gateway.adapters.limits import LATENCY_BOUNDS, ListenerStats
from gateway.codecs.gbt32960 import constants as gbt_c
from gateway.metrics import Snapshot, SnapshotBuilder
from gateway.store.tables import TABLES

if TYPE_CHECKING:
    from collections.abc import Iterable

    from gateway.runner import Gateway

#: GB/T 32960 command byte -> frame kind (``CMD_REALTIME`` -> ``realtime``).
GBT_KINDS: Final[dict[int, str]] = {
    value: name[4:].lower()
    for name, value in vars(gbt_c).items()
    if name.startswith("CMD_") and isinstance(value, int)
}
#: JT/T 808 message ids a terminal sends -> frame kind.
JT808_KINDS: Final[dict[int, str]] = {
    0x0001: "terminal_response",
    0x0002: "heartbeat",
    0x0003: "logout",
    0x0004: "query_server_time",
    0x0005: "resend_request",
    0x0100: "register",
    0x0102: "authenticate",
    0x0104: "query_params_response",
    0x0107: "attributes_response",
    0x0108: "upgrade_result",
    0x0200: "location",
    0x0201: "location_response",
    0x0301: "event_report",
    0x0302: "answer",
    0x0303: "info_demand",
    0x0500: "vehicle_control_response",
    0x0700: "driving_record",
    0x0701: "waybill",
    0x0702: "driver_identity",
    0x0704: "batch_location",
    0x0705: "can_bus_data",
    0x0800: "multimedia_event",
    0x0801: "multimedia_upload",
    0x0802: "multimedia_search_response",
    0x0805: "camera_response",
    0x0900: "transparent_uplink",
    0x0901: "compressed_uplink",
    0x0A00: "rsa_public_key",
}
_KINDS: Final = {"gbt32960": GBT_KINDS, "jt808": JT808_KINDS}
#: Record type name -> table (the pipeline reports its queues by type name).
_TABLE_OF_NAME: Final = {t.__name__: spec.name for t, spec in TABLES.items()}
_PAGE: Final = os.sysconf("SC_PAGE_SIZE")

#: (metric, attribute) tables read by :func:`_add_fields`, one series per row.
_MQTT_INTAKE_FIELDS: Final = (
    ("silkgate_mqtt_connected", "connected"),
    ("silkgate_mqtt_received_total", "received"),
    ("silkgate_mqtt_redelivered_total", "redelivered"),
    ("silkgate_mqtt_acked_total", "acked"),
    ("silkgate_mqtt_in_flight", "in_flight"),
    ("silkgate_mqtt_connects_total", "connects"),
    ("silkgate_mqtt_connect_failures_total", "connect_failures"),
)
_MQTT_ADAPTER_FIELDS: Final = (
    ("silkgate_mqtt_duplicates_total", "duplicates"),
    ("silkgate_mqtt_failed_batches_total", "failed_batches"),
)
_PIPELINE_FIELDS: Final = (
    ("silkgate_rows_submitted_total", "submitted_rows"),
    ("silkgate_batches_committed_total", "committed_batches"),
    ("silkgate_rows_spooled_total", "spooled_rows"),
    ("silkgate_batches_spooled_total", "spooled_batches"),
    ("silkgate_rows_replayed_total", "replayed_rows"),
    ("silkgate_rows_rejected_total", "rejected_rows"),
    ("silkgate_database_outages_total", "outages"),
    ("silkgate_batch_retries_total", "retries"),
)
_SPOOL_FIELDS: Final = (
    ("silkgate_spool_bytes", "bytes"),
    ("silkgate_spool_records", "records"),
    ("silkgate_spool_segments", "segments"),
    ("silkgate_spool_max_bytes", "max_bytes"),
)
_FORWARDER_FIELDS: Final = (
    ("silkgate_forwarder_up", "connected"),
    ("silkgate_forwarder_lag_seconds", "lag_s"),
    ("silkgate_forwarder_pending", "pending"),
    ("silkgate_forwarder_caught_up", "caught_up"),
    ("silkgate_forwarded_total", "forwarded"),
    ("silkgate_forwarder_rejected_total", "rejected"),
    ("silkgate_forwarder_skipped_total", "skipped"),
    ("silkgate_forwarder_failures_total", "failures"),
)
_REPUBLISH_FIELDS: Final = (
    ("silkgate_republish_connected", "connected"),
    ("silkgate_republished_total", "published"),
    ("silkgate_republish_lag_records", "lag_records"),
    ("silkgate_republish_lag_seconds", "lag_s"),
    ("silkgate_republish_errors_total", "errors"),
    ("silkgate_republish_rejected_total", "rejected"),
)


def frame_kind(protocol: str, code: int) -> str:
    """The ``kind`` label of a decoded frame; ids that are not known are ``other`` (a label
    per possible id would let a terminal create thousands of series)."""
    return _KINDS.get(protocol, {}).get(code, "other")


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):  # not Linux: the peak instead
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _add_fields(
    b: SnapshotBuilder, source: object, fields: Iterable[tuple[str, str]], **labels: str
) -> None:
    """One series per ``(metric, attribute)`` of ``source``: flags as 1/0, floats (lags)
    rounded to the millisecond."""
    for name, attr in fields:
        value = getattr(source, attr)
        if isinstance(value, bool):
            value = 1 if value else 0
        elif isinstance(value, float):
            value = round(value, 3)
        b.add(name, value, **labels)


def _connections(b: SnapshotBuilder, st: ListenerStats) -> None:
    p = st.protocol
    b.add("silkgate_connections", st.connections_open, protocol=p)
    b.add("silkgate_connections_accepted_total", st.connections_total, protocol=p)
    for reason, n in st.refused.items():
        b.add("silkgate_connections_refused_total", n, protocol=p, reason=reason)
    for reason, n in st.closed.items():
        b.add("silkgate_connections_closed_total", n, protocol=p, reason=reason)
    b.add("silkgate_bad_frames_total", st.bad_frames, protocol=p)
    b.add("silkgate_acks_total", st.acks_sent, protocol=p)
    b.add("silkgate_ack_failures_total", st.not_durable, protocol=p)
    lat = st.ack_latency
    b.histogram("silkgate_ack_latency_seconds", LATENCY_BOUNDS, lat.counts, lat.total_s, protocol=p)


def collect(
    gw: Gateway,
    worker: int,
    *,
    started: float,
    state: Literal["running", "stopped"] = "running",
) -> Snapshot:
    """The metrics of gateway ``gw`` (worker index ``worker``, 0 for a single process) now."""
    b = SnapshotBuilder()
    b.add("silkgate_build_info", 1, version=__version__)
    b.add("silkgate_process_start_time_seconds", started)
    cpu = os.times()
    b.add("silkgate_process_cpu_seconds_total", round(cpu.user + cpu.system, 3))
    b.add("silkgate_process_resident_memory_bytes", _rss_bytes())

    for listener in gw.listeners:
        p, ing = listener.protocol, listener.ingest.stats
        decoded = 0
        for code, n in ing.by_kind.items():
            b.add("silkgate_frames_total", n, protocol=p, kind=frame_kind(p, code))
            decoded += n
        b.add("silkgate_frames_total", ing.frames - decoded, protocol=p, kind="undecodable")
        b.add("silkgate_records_total", ing.records, protocol=p)
        for reason, n in ing.by_reason.items():
            b.add("silkgate_dead_letters_total", n, protocol=p, reason=reason)
        _connections(b, listener.stats)
    if gw.ocpp is not None:
        st = gw.ocpp.server.stats
        calls = 0
        for action, n in st.calls.items():
            b.add("silkgate_frames_total", n, protocol="ocpp", kind=action)
            calls += n
        # answers to the central system's own calls, and messages that were not a valid call
        b.add("silkgate_frames_total", st.frames - calls, protocol="ocpp", kind="other")
        for reason, n in st.dead_letters.items():
            b.add("silkgate_dead_letters_total", n, protocol="ocpp", reason=reason)
        _connections(b, st)
    if gw.mqtt is not None:
        ms, it = gw.mqtt.stats, gw.mqtt.intake.stats
        b.add("silkgate_frames_total", ms.messages, protocol="mqtt", kind="message")
        b.add("silkgate_records_total", ms.records, protocol="mqtt")
        for reason, n in ms.by_reason.items():
            b.add("silkgate_dead_letters_total", n, protocol="mqtt", reason=reason)
        _add_fields(b, it, _MQTT_INTAKE_FIELDS)
        _add_fields(b, ms, _MQTT_ADAPTER_FIELDS)

    if gw.pipeline is not None:
        pl = gw.pipeline
        ps = pl.stats
        _add_fields(b, ps, _PIPELINE_FIELDS)
        for kind, n in ps.committed_by_type.items():
            table = TABLES[kind].name if kind in TABLES else kind.__name__
            b.add("silkgate_rows_committed_total", n, table=table)
        b.observe("silkgate_batch_rows", ps.batch_rows)
        b.observe("silkgate_commit_seconds", ps.commit_s)
        for name, n in pl.queued_rows().items():
            b.add("silkgate_queue_rows", n, table=_TABLE_OF_NAME.get(name, name))
        b.add("silkgate_spooling", 1 if pl.spooling else 0)
    if gw.spool is not None:
        _add_fields(b, gw.spool.usage(), _SPOOL_FIELDS)

    if gw.forwarders is not None:
        for fs in gw.forwarders.stats():
            _add_fields(b, fs, _FORWARDER_FIELDS, forwarder=fs.name, kind=fs.kind)
    if gw.republisher is not None:
        rs = gw.republisher.stats
        _add_fields(b, rs, _REPUBLISH_FIELDS, name=rs.name)
    if gw.api is not None and gw.api.ctx is not None:
        b.add("silkgate_api_rate_limited_total", gw.api.ctx.limiter.refused)
        b.add("silkgate_api_audit_failures_total", gw.api.ctx.audit.failed)
        b.add("silkgate_api_commands_forwarded_total", gw.api.router.forwarded)
        b.add("silkgate_api_commands_served_total", gw.api.router.served)

    return Snapshot(
        worker=worker,
        pid=os.getpid(),
        time=time.time(),
        started=started,
        state=state,
        status=gw.status_line() or "",
        metrics=b.metrics(),
    )

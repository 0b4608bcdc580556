"""Batches of records grouped by type, and their compact binary form for the on-disk spool.

A spooled batch is msgpack: a list of ``[type name, msgpack list of records]`` pairs, decoded
back with one typed decoder per record type (built once).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, get_args

import msgspec

from gateway import records as r

#: Every record type the pipeline carries, by name (the spool stores the name).
RECORD_TYPES: dict[str, type[msgspec.Struct]] = {t.__name__: t for t in get_args(r.StoredRecord)}

Batch = dict[type[msgspec.Struct], list[Any]]

_encoder = msgspec.msgpack.Encoder()
_pairs = msgspec.msgpack.Decoder(list[tuple[str, msgspec.Raw]])
_decoders: dict[str, msgspec.msgpack.Decoder[Any]] = {}


def group(records: Iterable[msgspec.Struct]) -> Batch:
    """Records grouped by their type, each group in submission order."""
    batch = records if isinstance(records, list) else list(records)
    kinds = set(map(type, batch))
    if len(kinds) == 1:  # the common case (one frame's records, a batch of one kind)
        return {kinds.pop(): batch.copy()}
    out: Batch = {}  # first-appearance order: every writer visits the tables in the same order
    for rec in batch:
        out.setdefault(type(rec), []).append(rec)
    return out


def merge(into: Batch, more: Batch) -> None:
    """Append ``more``'s groups to ``into``'s (in place)."""
    for kind, rows in more.items():
        into.setdefault(kind, []).extend(rows)


def rows(batch: Batch) -> int:
    return sum(len(v) for v in batch.values())


def encode(batch: Batch) -> bytes:
    """The spool payload for ``batch``."""
    pairs: Sequence[tuple[str, msgspec.Raw]] = [
        (kind.__name__, msgspec.Raw(_encoder.encode(recs))) for kind, recs in batch.items()
    ]
    return _encoder.encode(pairs)


def decode(payload: bytes) -> Batch:
    """The batch a spool payload holds; ValueError if it is not one."""
    try:
        out: Batch = {}
        for name, raw in _pairs.decode(payload):
            kind = RECORD_TYPES.get(name)
            if kind is None:
                raise ValueError(f"unknown record type {name!r} in spooled batch")
            dec = _decoders.get(name)
            if dec is None:
                dec = _decoders[name] = msgspec.msgpack.Decoder(list[kind])  # type: ignore[valid-type]
            out[kind] = dec.decode(raw)
        return out
    except msgspec.DecodeError as exc:
        raise ValueError(f"spooled batch does not decode: {exc}") from exc

"""Type stub of the fused GB/T 32960 decode + normalize fast path (see ``_fastnorm.pyx``)."""

from gateway.records import Record

__all__ = ["realtime_records"]

def realtime_records(frame: bytes | bytearray | memoryview) -> list[Record]: ...
def _round_exact(x: float, nd: int) -> float: ...  # test hook: the native round(x, nd)

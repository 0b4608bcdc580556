"""``[metrics]``: the Prometheus endpoint and the per-process snapshot files (docs/metrics.md).
Apart from :mod:`gateway.config` so that the supervisor and ``silkgate status`` need nothing
heavier to find the snapshots."""

from __future__ import annotations

from pathlib import Path

from gateway.config_base import Port, PositiveFloat, Section

#: Snapshot file of worker ``i`` (``0`` for a single process) in the metrics directory.
SNAPSHOT_NAME = "worker-{index}.json"


class MetricsConfig(Section, frozen=True):
    """``[metrics]``: ``GET http://host:port/metrics`` (Prometheus text format 0.0.4), served by
    the single gateway process, or by the supervisor of ``--workers N`` from the workers'
    snapshot files."""

    enabled: bool = False  # serve /metrics over HTTP (snapshot files are written anyway)
    host: str = "127.0.0.1"  # loopback: put a reverse proxy or 0.0.0.0 for a remote scraper
    port: Port = 9960  # 0: any free port (printed at start)
    dir: str = ""  # the snapshot files; "" is <spool.path>/metrics (the configured spool.path)
    interval_s: PositiveFloat = 1.0  # how often each process writes its snapshot file
    stale_s: PositiveFloat = 5.0  # a snapshot older than this is ignored (the worker is down)

    def __post_init__(self) -> None:
        if self.stale_s <= self.interval_s:
            raise ValueError("stale_s must be longer than interval_s")


def metrics_dir(cfg: MetricsConfig, spool_path: str) -> Path:
    """The snapshot directory: ``dir``, or ``metrics`` beside the spool's segment files."""
    return Path(cfg.dir) if cfg.dir else Path(spool_path) / "metrics"


def snapshot_path(directory: Path, index: int) -> Path:
    """The snapshot file of worker ``index`` in ``directory``."""
    return directory / SNAPSHOT_NAME.format(index=index)

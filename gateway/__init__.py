"""silkgate: a telemetry and data-interaction gateway for Chinese NEV trucks, chargers and swap
stations. The import root; ``gateway.codecs`` and ``gateway.adapters`` live in the top-level
folders codecs/ and adapters/."""

__version__ = "0.1.0"

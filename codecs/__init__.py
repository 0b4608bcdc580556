"""Sans-IO codecs for the wire formats silkgate speaks (installed as ``gateway.codecs``).

Each protocol package has a pure-Python reference and a Cython accelerator with the same API;
``gateway.codecs.<protocol>`` exports whichever the selector picked.
"""

from gateway.codecs.errors import ProtocolError, Reason

__all__ = ["ProtocolError", "Reason"]

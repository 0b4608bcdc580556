"""jt808 codec: the implementation picked by the selector (Cython unless SILKGATE_NO_EXTENSIONS=1)."""

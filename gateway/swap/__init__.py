"""Battery-swap stations: the versioned JSON message set (silkgate swap v1) and its records."""

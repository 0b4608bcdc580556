# placeholder: the fused GB/T 32960 decode + normalize fast path is being written

"""Build the Cython accelerators: the codecs, the fused normalizer and the COPY encoder.

Every extension is required: a failed compile fails the install. There is no silent fallback
to pure Python at build time; the runtime selector (gateway.codecs._select) uses the pure-Python
reference only when SILKGATE_NO_EXTENSIONS=1.
"""

from Cython.Build import cythonize
from setuptools import Extension, setup

EXTENSIONS = [
    Extension("gateway.codecs.gbt32960._accel", ["codecs/gbt32960/_accel.pyx"]),
    Extension("gateway.codecs.jt808._accel", ["codecs/jt808/_accel.pyx"]),
    Extension("gateway._fastnorm", ["gateway/_fastnorm.pyx"]),
    Extension("gateway.store._copybin", ["gateway/store/_copybin.pyx"]),
]

setup(
    ext_modules=cythonize(
        EXTENSIONS,
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    ),
)

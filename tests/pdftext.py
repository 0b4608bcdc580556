"""The text of a PDF made by fpdf2, for tests: its page content streams, inflated.

Tests add ``tests/`` to ``sys.path`` and ``from pdftext import pdf_text``.
"""

from __future__ import annotations

import re
import zlib


def pdf_text(pdf: bytes) -> str:
    """The page content streams of ``pdf``, inflated (fpdf2 compresses them)."""
    out = []
    for raw in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S):
        try:
            out.append(zlib.decompress(raw).decode("latin-1"))
        except zlib.error:
            continue
    return "".join(out)

"""The PDF report (fpdf2, pure Python): the same :class:`~.summary.Document` as the HTML page,
A4 landscape, charts drawn as vector shapes from :func:`.charts.layout`.

Text uses the PDF core font Helvetica, which covers Latin-1 only: other characters (names in
Thai, Arabic or Chinese) print as ``?`` in the PDF; the HTML, CSV and JSON keep them.
"""

from __future__ import annotations

from fpdf import FPDF

from gateway.reports.charts import Chart, Line, Rect, layout
from gateway.reports.html import parameters_line
from gateway.reports.model import Report
from gateway.reports.summary import Document, Table, document

FONT = "helvetica"
PT_PER_MM = 72 / 25.4
MARGIN = 12.0
TABLE_PT = 7.0
CELL_PAD = 1.8


def latin1(text: str) -> str:
    """``text`` with what Latin-1 cannot hold replaced by ``?`` (the core fonts' limit)."""
    return text.encode("latin-1", "replace").decode("latin-1")


def _rgb(color: str) -> tuple[int, int, int]:
    c = color.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def draw_chart(pdf: FPDF, chart: Chart, x: float, y: float, width: float) -> float:
    """Draw ``chart`` at ``(x, y)`` (mm), ``width`` mm wide; returns its height in mm."""
    d = layout(chart)
    scale = width / d.width
    for s in d.shapes:
        if isinstance(s, Rect):
            pdf.set_fill_color(*_rgb(s.fill))
            pdf.rect(x + s.x * scale, y + s.y * scale, s.w * scale, s.h * scale, style="F")
        elif isinstance(s, Line):
            pdf.set_draw_color(*_rgb(s.stroke))
            pdf.set_line_width(s.width * scale)
            pdf.line(x + s.x1 * scale, y + s.y1 * scale, x + s.x2 * scale, y + s.y2 * scale)
        else:
            pdf.set_font(FONT, "B" if s.bold else "", s.size * scale * PT_PER_MM)
            pdf.set_text_color(*_rgb(s.fill))
            text = latin1(s.text)
            w = pdf.get_string_width(text)
            dx = {"start": 0.0, "middle": -w / 2, "end": -w}[s.anchor]
            pdf.text(x + s.x * scale + dx, y + s.y * scale, text)
    pdf.set_text_color(0, 0, 0)
    pdf.set_draw_color(0, 0, 0)
    pdf.set_fill_color(255, 255, 255)
    pdf.set_line_width(0.2)
    return d.height * scale


def _fit(pdf: FPDF, text: str, width: float) -> str:
    """``text`` cut (with ``...``) to ``width`` mm in the current font."""
    if pdf.get_string_width(text) <= width + 1e-6:  # a column's widest text fits exactly
        return text
    while text and pdf.get_string_width(text + "...") > width:
        text = text[:-1]
    return text + "..."


def _widths(pdf: FPDF, t: Table, total: float) -> list[float]:
    """Column widths: each column's widest text (header bold, first rows), scaled to fit."""
    natural = []
    for i, header in enumerate(t.headers):
        pdf.set_font(FONT, "B", TABLE_PT)
        w = pdf.get_string_width(latin1(header))
        pdf.set_font(FONT, "", TABLE_PT)
        for row in t.rows[:200]:
            w = max(w, pdf.get_string_width(latin1(row[i])))
        natural.append(w + 2 * CELL_PAD)
    scale = total / sum(natural) if sum(natural) > total else 1.0
    return [w * scale for w in natural]


def _table(pdf: FPDF, t: Table) -> None:
    """A table drawn with text and rules (fpdf2's own table lays out every cell as a
    paragraph: 50x slower for a few hundred rows)."""
    width = pdf.w - 2 * MARGIN
    line = TABLE_PT / PT_PER_MM * 1.6
    if pdf.get_y() + 7 + 3 * line > pdf.h - MARGIN:
        pdf.add_page()
    pdf.set_font(FONT, "B", 11)
    pdf.ln(3)
    pdf.cell(0, 7, latin1(t.title), new_x="LMARGIN", new_y="NEXT")
    widths = _widths(pdf, t, width)

    def row(cells: list[str], y: float, bold: bool) -> None:
        pdf.set_font(FONT, "B" if bold else "", TABLE_PT)
        x = MARGIN
        for i, (text, w) in enumerate(zip(cells, widths, strict=True)):
            text = _fit(pdf, latin1(text), w - 2 * CELL_PAD)
            dx = CELL_PAD
            if i >= t.numeric_from:
                dx = w - CELL_PAD - pdf.get_string_width(text)
            pdf.text(x + dx, y + line * 0.72, text)
            x += w

    def header(y: float) -> float:
        pdf.set_fill_color(242, 244, 247)
        pdf.rect(MARGIN, y, sum(widths), line, style="F")
        pdf.set_fill_color(255, 255, 255)
        row(t.headers, y, True)
        return y + line

    pdf.set_draw_color(210, 210, 210)
    pdf.set_line_width(0.15)
    y = header(pdf.get_y())
    for cells in t.rows or [["none"] + [""] * (len(t.headers) - 1)]:
        if y + line > pdf.h - MARGIN:
            pdf.add_page()
            y = header(pdf.get_y())
        row(cells, y, False)
        y += line
        pdf.line(MARGIN, y, MARGIN + sum(widths), y)
    pdf.set_draw_color(0, 0, 0)
    pdf.set_y(y + 1)
    if t.note:
        pdf.set_font(FONT, "I", 8)
        pdf.cell(0, 5, latin1(t.note), new_x="LMARGIN", new_y="NEXT")


def render_document(doc: Document, parameters: str = "") -> bytes:
    """A :class:`Document` as PDF bytes."""
    pdf = FPDF(orientation="landscape", format="A4")
    pdf.set_margins(MARGIN, MARGIN, MARGIN)
    pdf.set_auto_page_break(True, MARGIN)
    pdf.set_title(latin1(doc.title))
    pdf.set_creator("silkgate")
    pdf.add_page()
    width = pdf.w - 2 * MARGIN
    pdf.set_font(FONT, "B", 16)
    pdf.cell(0, 9, latin1(doc.title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, "", 9)
    for line in doc.subtitle:
        pdf.cell(0, 5, latin1(line), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    col = width / 4
    for i in range(0, len(doc.figures), 4):
        y = pdf.get_y()
        for j, (label, value) in enumerate(doc.figures[i : i + 4]):
            pdf.set_xy(MARGIN + j * col, y)
            pdf.set_font(FONT, "", 8)
            pdf.set_text_color(90, 90, 90)
            pdf.cell(col, 4, latin1(label))
            pdf.set_xy(MARGIN + j * col, y + 4)
            pdf.set_font(FONT, "B", 11)
            pdf.set_text_color(0, 0, 0)
            pdf.cell(col, 6, latin1(value))
        pdf.set_xy(MARGIN, y + 12)
    for chart in doc.charts:
        height = width * 240 / 720
        if pdf.get_y() + height > pdf.h - MARGIN:
            pdf.add_page()
        y = pdf.get_y() + 2
        pdf.set_y(y + draw_chart(pdf, chart, MARGIN, y, width))
    for t in doc.tables:
        _table(pdf, t)
    if parameters:
        pdf.ln(4)
        pdf.set_font(FONT, "", 7)
        pdf.set_text_color(90, 90, 90)
        pdf.multi_cell(0, 3.5, latin1(parameters))
    return bytes(pdf.output())


def to_pdf(report: Report) -> bytes:
    """The report as a PDF with charts."""
    return render_document(document(report), parameters_line(report))

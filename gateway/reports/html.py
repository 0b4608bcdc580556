"""The printable HTML report: one self-contained page (inline CSS and SVG charts, no
JavaScript, no external resources) laid out for A4 printing."""

from __future__ import annotations

from html import escape

from gateway.reports.charts import to_svg
from gateway.reports.model import Report
from gateway.reports.summary import Document, Table, document

_CSS = """
@page { size: A4 landscape; margin: 12mm; }
body { font-family: Helvetica, Arial, sans-serif; color: #222; margin: 24px; font-size: 12px; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 15px; margin: 22px 0 6px; break-after: avoid; }
p.sub { margin: 0; color: #555; }
dl.figures { display: grid; grid-template-columns: repeat(4, minmax(0, 1fr)); gap: 8px 16px;
  margin: 16px 0; }
dl.figures div { border-left: 3px solid #2f6db5; padding-left: 8px; }
dt { color: #555; font-size: 11px; } dd { margin: 0; font-size: 15px; font-weight: bold; }
figure { margin: 12px 0; break-inside: avoid; }
figure svg { max-width: 100%; height: auto; }
table { border-collapse: collapse; width: 100%; font-size: 11px; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 6px; text-align: left; }
th { background: #f2f4f7; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
tr { break-inside: avoid; } p.note { color: #555; font-style: italic; }
p.params { color: #555; font-size: 10px; margin-top: 24px; }
"""


def _table(t: Table) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in t.headers)
    body = []
    for row in t.rows:
        cells = "".join(
            f'<td class="n">{escape(c)}</td>' if i >= t.numeric_from else f"<td>{escape(c)}</td>"
            for i, c in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    if not t.rows:
        body.append(f'<tr><td colspan="{len(t.headers)}">none</td></tr>')
    note = f'<p class="note">{escape(t.note)}</p>' if t.note else ""
    return (
        f"<h2>{escape(t.title)}</h2><table><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>{note}"
    )


def render_document(doc: Document, parameters: str = "") -> str:
    """A :class:`Document` as an HTML page."""
    figures = "".join(
        f"<div><dt>{escape(k)}</dt><dd>{escape(v)}</dd></div>" for k, v in doc.figures
    )
    charts = "".join(f"<figure>{to_svg(c)}</figure>" for c in doc.charts)
    tables = "".join(_table(t) for t in doc.tables)
    subtitle = "".join(f'<p class="sub">{escape(s)}</p>' for s in doc.subtitle)
    params = f'<p class="params">{escape(parameters)}</p>' if parameters else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(doc.title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{escape(doc.title)}</h1>{subtitle}"
        f'<dl class="figures">{figures}</dl>{charts}{tables}{params}</body></html>\n'
    )


def parameters_line(report: Report) -> str:
    """The settings the report was made with, as one line."""
    return "Parameters: " + ", ".join(f"{k}={v}" for k, v in report.parameters.items())


def to_html(report: Report) -> str:
    """The report as a printable HTML page with inline SVG charts."""
    return render_document(document(report), parameters_line(report))

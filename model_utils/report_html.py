"""What every HTML report of model_utils shares: one stylesheet, escaping, number cells and the page and SVG
chart frames, so the accuracy report and the downstream report look alike and escape alike.

Pages are self-contained (inline CSS and SVG, no scripts, no external files): they open from a run folder
on any machine, offline.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable
from typing import Any

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2329;margin:2em auto;
max-width:1000px;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:2em}
.meta{color:#5b6770;margin-top:0}
table{border-collapse:collapse;margin:.6em 0}
th,td{border-bottom:1px solid #d5dbe0;padding:.35em .7em;text-align:right;vertical-align:top}
th{background:#f2f5f7;font-weight:600}
th.l,td.l{text-align:left}
td.v{font-variant-numeric:tabular-nums;font-weight:600}
.note{color:#5b6770;font-size:.92em}
.warn{color:#8a5a00}
svg{max-width:100%;height:auto}
"""


def esc(value: Any) -> str:
    """``value`` as HTML text (quotes too, so it is safe inside attributes)."""
    return html.escape(str(value), quote=True)


def number(value: float | int | None, fmt: str) -> str:
    """A number cell: ``format(value, fmt)``, or empty for a missing value (None or NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return format(value, fmt)


def page(title: str, meta: str, sections: Iterable[str], extra_css: str = "") -> str:
    """A whole HTML document: ``title`` (text), ``meta`` (HTML line under it), then ``sections`` (HTML)."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{CSS}{extra_css}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="meta">{meta}</p>',
        *sections,
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def svg_open(width: int, height: int, title: str, description: str = "", css_class: str = "chart") -> str:
    """The opening of an inline SVG chart with its accessible title (and description)."""
    slug = css_class.replace(" ", "-")
    labelled = f"{slug}-title" + (f" {slug}-desc" if description else "")
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}" role="img" aria-labelledby="{labelled}" class="{css_class}" '
            f'font-family="system-ui,sans-serif" font-size="12">'
            f'<title id="{slug}-title">{esc(title)}</title>')
    return head + (f'<desc id="{slug}-desc">{esc(description)}</desc>' if description else "")


def table(head: Iterable[str], rows: Iterable[Iterable[str]], css_class: str = "", left: int = 1) -> str:
    """A table of already-escaped cells; the first ``left`` columns are left-aligned (labels)."""
    def cells(tag: str, values: Iterable[str]) -> str:
        return "".join(f'<{tag} class="l">{v}</{tag}>' if i < left else f"<{tag}>{v}</{tag}>"
                       for i, v in enumerate(values))

    body = "".join(f"<tr>{cells('td', row)}</tr>" for row in rows)
    cls = f' class="{css_class}"' if css_class else ""
    return f"<table{cls}><thead><tr>{cells('th', head)}</tr></thead><tbody>{body}</tbody></table>"

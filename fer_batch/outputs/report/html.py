"""HTML building blocks of the report: escaping, links, colour swatches, share bars, the page and its CSS.

Why apart: every string that reaches the page is escaped here, in one place, whatever part of the report made it.
"""

from __future__ import annotations

import base64
import html
import logging
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from fer_batch.outputs.summary import (
    label_colors,
)

log = logging.getLogger(__name__)

def esc(s: object) -> str:
    return html.escape(str(s), quote=True)


def _str(v: Any) -> str | None:
    """A manifest or metadata string field, None for missing values (NaN, None, empty)."""
    return None if v is None or (isinstance(v, float) and np.isnan(v)) or v == "" else str(v)


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def rel_href(target: Path, page_dir: Path) -> str:
    """A link from a page in ``page_dir`` to ``target``, relative (the folder may be moved or mailed whole)."""
    rel = os.path.relpath(target.resolve(), page_dir.resolve())
    return esc(quote(Path(rel).as_posix()))


def link(text: str, href: str | None) -> str:
    return f'<a href="{esc(href)}">{esc(text)}</a>' if href else esc(text)


def html_colors(labels: list[str]) -> dict[str, str]:
    """The colour per label (``outputs.palette``), as CSS hex."""
    return label_colors(labels)


def _ink(hex_color: str) -> str:
    """Dark or light text, whichever reads on the background colour."""
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return "#111" if 0.299 * r + 0.587 * g + 0.114 * b > 150 else "#fff"


def share_bar(shares: dict[str, float], colors: dict[str, str]) -> str:
    """Shares of the arg-max label as one stacked bar; a label is written in its part when it has room."""
    parts = []
    for label, v in shares.items():
        if v > 0:
            text = f"{esc(label)} {v:.0%}" if v >= 0.15 else ""
            parts.append(f'<span style="width:{100 * v:.2f}%;background:{colors[label]};color:{_ink(colors[label])}"'
                         f' title="{esc(label)} {v:.1%}">{text}</span>')  # fmt: skip
    return f'<div class="bar">{"".join(parts) or "<i>no reliable face</i>"}</div>'


def legend(colors: dict[str, str]) -> str:
    keys = "".join(f'<span><i style="background:{c}"></i>{esc(label)}</span>' for label, c in colors.items())
    return f'<div class="legend">{keys}</div>'


def fmt_duration(s: float) -> str:
    if s < 60:
        return f"{s:.1f} s"
    m, sec = divmod(round(s), 60)
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min {sec:02d} s" if h else f"{m} min {sec:02d} s"


CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;margin:0 auto;max-width:1180px;
padding:16px 24px 48px;background:#fafafa}
h1{font-size:22px;margin:8px 0 2px}h2{font-size:18px;margin:28px 0 6px}h3{font-size:14px;margin:14px 0 4px}
h4{margin:0;font-size:14px}p,li,h2,figcaption{overflow-wrap:anywhere}
.muted{color:#666}.note{background:#fff4e0;border-left:3px solid #f0a020;padding:4px 8px}
.ok{color:#2a7a2a}a{color:#1a5fb4}
.facts{display:flex;flex-wrap:wrap;gap:8px;margin:12px 0}.fact{background:#fff;border:1px solid #ddd;border-radius:6px;
padding:6px 12px;min-width:90px}.fact b{display:block;font-size:18px}.fact span{color:#666;font-size:12px}
.st{font-size:11px;padding:1px 6px;border-radius:8px;background:#ddd;vertical-align:middle}
.st-ok{background:#d7f0d7}.st-partial{background:#ffe2a8}.st-failed{background:#f6c6c6}.st-skipped{background:#dde6f5}
table{border-collapse:collapse;background:#fff}td,th{border-bottom:1px solid #e4e4e4;padding:4px 8px;text-align:left;
vertical-align:middle}table.kv{margin:6px 0;font-size:13px}table.kv th{color:#555;font-weight:600;white-space:nowrap}
.scroll{overflow-x:auto;max-width:100%}table.index{width:100%}td.wide{width:45%;min-width:120px}
ul.failures li{margin:2px 0}
.bar{display:flex;height:18px;border-radius:3px;overflow:hidden;background:#eee;font-size:11px;line-height:18px;
min-width:120px}.bar span{white-space:nowrap;overflow:hidden;text-align:center}.bar i{color:#888;padding:0 6px}
.legend{display:flex;flex-wrap:wrap;gap:10px;font-size:12px;margin:4px 0}.legend i{display:inline-block;width:10px;
height:10px;margin-right:4px;border-radius:2px}
section.video{background:#fff;border:1px solid #ddd;border-radius:8px;padding:4px 16px 12px;margin:24px 0}
.overview{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}.overview>div{flex:1;min-width:min(300px,100%)}
figure.player{margin:0}figure.player figcaption{font-size:11px;color:#666}
video.annotated{width:400px;max-width:100%;background:#000;border-radius:4px;display:block}
.track{display:grid;grid-template-columns:minmax(0,300px) minmax(0,1fr);gap:12px;border-top:1px solid #eee;
padding:8px 0}
.who p{margin:2px 0;font-size:12px;color:#444}.strip{display:flex;gap:4px;flex-wrap:wrap}
.strip figure{margin:0;text-align:center;font-size:10px;color:#666}.thumb{height:64px;border-radius:3px;display:block}
img.timeline{width:100%;max-width:720px;height:auto;display:block}
@media (max-width:640px){body{padding:8px 10px 32px}section.video{padding:4px 10px 10px}
.track{grid-template-columns:minmax(0,1fr)}}
"""


def page(title: str, body: str) -> str:
    """A complete HTML document: inline CSS, no script, no external resource."""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head>\n<body>\n{body}\n</body></html>\n")  # fmt: skip

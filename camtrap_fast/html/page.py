"""Self-contained HTML pages: the document, escaped cells, sortable tables, embedded figures and Markdown tables.

Every page carries its style, script and data inline (PNG figures and photo thumbnails as data: URIs), so it
opens from disk with no network. Data the script reads lives in one `<script type="application/json">`.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from camtrap_fast.atomic import write_text
from camtrap_fast.html.assets import CSS, JS

# A page larger than this is refused rather than written (the thumbnails' budget keeps reports well below it).
MAX_PAGE_BYTES = 15 * 1024 * 1024


def esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def number(value, digits: int = 3) -> str:
    """A cell for a score: blank for None/NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, int):
        return str(value)
    return f"{float(value):.{digits}f}"


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def figure(path: Path, alt: str) -> str:
    """An <img> with the PNG at `path` embedded, or a note when it is missing."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return f'<p class="note">({esc(path.name)} not written)</p>'
    return f'<img class="figure" alt="{esc(alt)}" src="{data_uri(data, "image/png")}">'


def table(headers: Sequence[str], rows: Iterable[Sequence], numeric: Sequence[bool] | None = None,
          table_id: str = "", sortable: bool = True, caption: str = "") -> str:
    """A table of already-formatted cells (escaped here); numeric columns align right and sort as numbers."""
    numeric = list(numeric) if numeric is not None else [False] * len(headers)
    cls = ' class="sortable"' if sortable else ""
    ident = f' id="{esc(table_id)}"' if table_id else ""
    head = "".join(f'<th{" class=n" if n else ""}>{esc(h)}</th>' for h, n in zip(headers, numeric))
    body = "".join("<tr>" + "".join(f'<td{" class=n" if n else ""}>{esc(c)}</td>' for c, n in zip(row, numeric))
                   + "</tr>" for row in rows)
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    # Wide tables scroll sideways in their own box instead of widening the page.
    return f'<div class="wide"><table{cls}{ident}>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def key_values(pairs: Iterable[tuple[str, object]]) -> str:
    return '<dl class="kv">' + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in pairs) + "</dl>"


def json_block(data) -> str:
    return f"<details><summary>show</summary><pre>{esc(json.dumps(data, indent=1))}</pre></details>"


_NUMERIC = re.compile(r"^[-+–]?[0-9.]+( ± [0-9.]+)?$|^–$")
_INLINE = re.compile(r"\*\*(.+?)\*\*|`([^`]+)`")


def _inline(text: str) -> str:
    """Markdown's **bold** and `code`, everything else escaped."""
    out, last = [], 0
    for match in _INLINE.finditer(text):
        out.append(esc(text[last:match.start()]))
        out.append(f"<b>{esc(match.group(1))}</b>" if match.group(1) is not None else f"<code>{esc(match.group(2))}</code>")
        last = match.end()
    out.append(esc(text[last:]))
    return "".join(out)


def markdown(text: str, table_class: str = "sortable") -> str:
    """The Markdown camtrap-fast writes (headings, paragraphs, bullet lists, pipe tables) as HTML."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        if line.startswith("|"):
            block = []
            while i < len(lines) and lines[i].startswith("|"):
                block.append([cell.strip() for cell in lines[i].strip().strip("|").split("|")])
                i += 1
            header, rows = block[0], [r for r in block[1:] if not all(set(c) <= set("-: ") for c in r)]
            numeric = [bool(rows) and all(_NUMERIC.match(r[j]) for r in rows if j < len(r))
                       for j in range(len(header))]
            head = "".join(f'<th{" class=n" if n else ""}>{_inline(h)}</th>' for h, n in zip(header, numeric))
            body = "".join("<tr>" + "".join(f'<td{" class=n" if n else ""}>{_inline(c)}</td>'
                                            for c, n in zip(row, numeric)) + "</tr>" for row in rows)
            out.append(f'<table class="{table_class}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')
            continue
        if line.startswith("#"):
            level = min(len(line) - len(line.lstrip("#")) + 2, 5)  # under the page's own h1 and section h2
            out.append(f"<h{level}>{_inline(line.lstrip('#').strip())}</h{level}>")
        elif line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append(f"<li>{_inline(lines[i][2:])}</li>")
                i += 1
            out.append("<ul>" + "".join(items) + "</ul>")
            continue
        elif line:
            out.append(f"<p>{_inline(line)}</p>")
        i += 1
    return "\n".join(out)


def document(title: str, sections: Sequence[tuple[str, str, str]], data: Mapping | None = None,
             intro: str = "") -> str:
    """A whole page: `sections` are (anchor id, heading, inner HTML), listed in a navigation bar."""
    nav = "".join(f'<a href="#{esc(anchor)}">{esc(heading)}</a>' for anchor, heading, _ in sections)
    body = "".join(f'<section id="{esc(anchor)}"><h2>{esc(heading)}</h2>{inner}</section>'
                   for anchor, heading, inner in sections)
    payload = json.dumps(data or {}, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{esc(title)}</h1>{intro}<nav>{nav}</nav>{body}"
            f'<div id="viewer" hidden><div class="box"></div></div>'
            f'<script type="application/json" id="page-data">{payload}</script>'
            f"<script>{JS}</script></body></html>\n")


def write_page(path: Path, page: str) -> Path:
    """Write a page atomically, refusing one over MAX_PAGE_BYTES (a bug in the thumbnail budget, not the data)."""
    size = len(page.encode("utf-8"))
    if size > MAX_PAGE_BYTES:
        raise ValueError(f"{path}: page of {size} bytes exceeds the {MAX_PAGE_BYTES}-byte cap")
    return write_text(path, page)

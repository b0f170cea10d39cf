"""The report's markup vocabulary: escaping, cells, tables, tiles, value formats, and its CSS.

Every value goes through `esc` (`html.escape`) before it touches the page; the structure
around it is literal text.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from datetime import datetime

THUMB_WIDTH = 180


CSS = (
    """
:root { color-scheme: light dark; --fg: #1d232b; --muted: #5d6875; --line: #d9dee4;
  --bg: #fff; --panel: #f5f7f9; --ok: #1a7f37; --bad: #c62828; --warn: #9a6700; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6e9ed; --muted: #9aa5b1;
  --line: #3a424c; --bg: #15191e; --panel: #1e242b; --ok: #4ac26b; --bad: #ff6b6b;
  --warn: #d29922; } }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg);
  background: var(--bg); margin: 0 auto; padding: 24px; max-width: 1400px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 36px 0 8px; padding-top: 12px; border-top: 2px solid var(--line); }
h3 { font-size: 15px; margin: 20px 0 6px; }
.meta, .note { color: var(--muted); }
.tiles { display: flex; flex-wrap: wrap; gap: 8px; margin: 8px 0; }
.tile { background: var(--panel); border: 1px solid var(--line); border-radius: 6px;
  padding: 6px 12px; min-width: 110px; }
.tile b { display: block; font-size: 18px; font-variant-numeric: tabular-nums; }
.tile span { color: var(--muted); font-size: 12px; }
.tile.done b { color: var(--ok); } .tile.failed b { color: var(--bad); }
.tile.waiting b { color: var(--warn); }
table { border-collapse: collapse; margin: 6px 0 12px; width: 100%; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: left;
  vertical-align: top; }
th { background: var(--panel); font-weight: 600; white-space: nowrap; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.msg { max-width: 420px; overflow-wrap: anywhere; }
td.url { max-width: 260px; overflow-wrap: anywhere; font-size: 12px; color: var(--muted); }
code { font-size: 12.5px; overflow-wrap: anywhere; }
.gallery { display: grid; gap: 10px;
  grid-template-columns: repeat(auto-fill, minmax("""
    + str(THUMB_WIDTH)
    + """px, 1fr)); }
.gallery figure { margin: 0; background: var(--panel); border: 1px solid var(--line);
  border-radius: 6px; padding: 6px; }
.gallery img { width: 100%; height: 220px; object-fit: contain; display: block; }
.gallery figcaption { font-size: 12px; overflow-wrap: anywhere; margin-top: 4px; }
.missing { height: 220px; display: flex; align-items: center; justify-content: center;
  color: var(--bad); font-size: 12px; text-align: center; overflow-wrap: anywhere; }
nav a { margin-right: 12px; }
"""
)


def esc(value: object) -> str:
    """Any value, as text safe inside an element or a quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)


def when(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(ms: int) -> str:
    seconds = ms // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def table(header: Iterable[tuple[str, str]], rows: Iterable[Iterable[str]], css_class: str) -> str:
    """`header` is (label, cell class) pairs; `rows` are cells already rendered as HTML."""
    head = "".join(f'<th class="{c}">{label}</th>' for label, c in header)
    body = "\n".join("<tr>" + "".join(row) + "</tr>" for row in rows)
    return (
        f'<table class="{css_class}">\n<thead><tr>{head}</tr></thead>\n'
        f"<tbody>\n{body}\n</tbody></table>"
    )


def td(value: object, css_class: str = "") -> str:
    attr = f' class="{css_class}"' if css_class else ""
    return f"<td{attr}>{esc(value)}</td>"


def code_td(code: str | None) -> str:
    return f'<td class="code"><code>{esc(code)}</code></td>' if code else '<td class="code"></td>'


def tile(label: str, value: object, css_class: str = "") -> str:
    return f'<div class="tile {css_class}"><b>{esc(value)}</b><span>{esc(label)}</span></div>'


def more(shown: int, total: int, what: str, how: str) -> str:
    if total <= shown:
        return ""
    return f'<p class="note">Showing the first {shown} of {total} {esc(what)}; {how}</p>'

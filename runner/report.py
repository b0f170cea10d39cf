"""The morning-after report: one self-contained HTML file from `ReportData`.

No external assets and no JavaScript: the CSS is inline and the gallery links to the result
files by paths relative to the report's folder, so the folder can be zipped or served as is.
Every value that came from the database or a manifest goes through `html.escape` (the `_e`
helper) before it touches the page; the structure around it is literal text.
"""

from __future__ import annotations

import html
import os
import tempfile
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from runner.api.errors import ErrorClass, rule_for
from runner.store.jobs import JobState
from runner.store.reports import BatchReport, JobLine, ReportData, ResultImage
from runner.store.status import STATE_ORDER

DEFAULT_NAME = "report.html"

THUMB_WIDTH = 180

_CLASS_HINTS = {
    ErrorClass.THROTTLE: "The account was busy; such answers cost no attempt.",
    ErrorClass.CLOCK: "This machine's clock is off; the runner corrects it by itself.",
    ErrorClass.TRANSIENT: "A passing fault of the service: `changeclothes retry --code {code}`.",
    ErrorClass.BAD_ROW: "The service refused this row's images or values: fix the row "
    "(or the image at its URL) and submit it again.",
    ErrorClass.HALT: "An account-level problem.",
    ErrorClass.WAIT: "The service was still being activated.",
    ErrorClass.OUTAGE: "The endpoint could not be reached: check the network, then rerun.",
}

_CSS = (
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


def _e(value: object) -> str:
    """Any value, as text safe inside an element or a quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(ms: int) -> str:
    seconds = ms // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def advice_for(code: str | None) -> str:
    """What a user should do about `code`: the error table's advice, else a hint by class."""
    if not code:
        return ""
    rule = rule_for(code)
    if rule.advice:
        return rule.advice
    return _CLASS_HINTS[rule.error_class].format(code=code)


def locate_result(output_path: str, out_dir: Path, batch: str) -> Path | None:
    """The result file on disk: the recorded path (relative ones from the current folder),
    else the same file name under `out_dir/batch` (the results folder was moved); None if gone.
    """
    recorded = Path(output_path)
    for candidate in (recorded, out_dir / batch / recorded.name):
        if candidate.is_file():
            return Path(os.path.abspath(candidate))
    return None


def relative_href(target: Path, report_dir: Path) -> str:
    """A URL for `target` relative to the report's folder (percent-encoded, not yet escaped)."""
    try:
        rel = os.path.relpath(os.path.abspath(target), os.path.abspath(report_dir))
    except ValueError:  # another drive on Windows: no relative path exists
        return Path(os.path.abspath(target)).as_uri()
    return quote(Path(rel).as_posix())


def _table(header: Iterable[tuple[str, str]], rows: Iterable[Iterable[str]], css_class: str) -> str:
    """`header` is (label, cell class) pairs; `rows` are cells already rendered as HTML."""
    head = "".join(f'<th class="{c}">{label}</th>' for label, c in header)
    body = "\n".join("<tr>" + "".join(row) + "</tr>" for row in rows)
    return (
        f'<table class="{css_class}">\n<thead><tr>{head}</tr></thead>\n'
        f"<tbody>\n{body}\n</tbody></table>"
    )


def _td(value: object, css_class: str = "") -> str:
    attr = f' class="{css_class}"' if css_class else ""
    return f"<td{attr}>{_e(value)}</td>"


def _code_td(code: str | None) -> str:
    return f'<td class="code"><code>{_e(code)}</code></td>' if code else '<td class="code"></td>'


def _tile(label: str, value: object, css_class: str = "") -> str:
    return f'<div class="tile {css_class}"><b>{_e(value)}</b><span>{_e(label)}</span></div>'


def _more(shown: int, total: int, what: str, how: str) -> str:
    if total <= shown:
        return ""
    return f'<p class="note">Showing the first {shown} of {total} {_e(what)}; {how}</p>'


def _overview(data: ReportData) -> str:
    header = [
        ("batch", ""),
        ("submitted", ""),
        *((str(s), "n") for s in STATE_ORDER),
        ("total", "n"),
        ("paid calls", "n"),
        ("throttled", "n"),
        ("failed calls", "n"),
        ("re-generations", "n"),
        ("API time", "n"),
    ]
    rows = []
    for i, b in enumerate(data.batches):
        rows.append(
            [
                f'<td><a href="#batch-{i + 1}">{_e(b.name)}</a></td>',
                _td(_when(b.submitted_at)),
                *(_td(b.counts.get(str(s), 0), "n") for s in STATE_ORDER),
                _td(b.total, "n"),
                _td(b.paid_calls, "n"),
                _td(b.throttled, "n"),
                _td(b.calls - b.paid_calls - b.throttled, "n"),
                _td(b.expired, "n"),
                _td(_duration(b.api_ms), "n"),
            ]
        )
    if len(data.batches) > 1:
        total = sum(b.total for b in data.batches)
        rows.append(
            [
                "<td><b>all batches</b></td>",
                _td(""),
                *(
                    _td(sum(b.counts.get(str(s), 0) for b in data.batches), "n")
                    for s in STATE_ORDER
                ),
                _td(total, "n"),
                _td(sum(b.paid_calls for b in data.batches), "n"),
                _td(sum(b.throttled for b in data.batches), "n"),
                _td(sum(b.calls - b.paid_calls - b.throttled for b in data.batches), "n"),
                _td(sum(b.expired for b in data.batches), "n"),
                _td(_duration(sum(b.api_ms for b in data.batches)), "n"),
            ]
        )
    return _table(header, rows, "overview")


def _url_cell(job: JobLine) -> str:
    return (
        f'<td class="url">{_e(job.clothes_type)}<br>model: {_e(job.model_url)}'
        f"<br>clothes: {_e(job.clothes_url)}</td>"
    )


def _calls_section(b: BatchReport) -> str:
    parts = ["<h3>API calls</h3>", '<div class="tiles">']
    parts += [
        _tile("paid calls", b.paid_calls, "done"),
        _tile("throttled answers", b.throttled, "waiting"),
        _tile("failed calls", b.calls - b.paid_calls - b.throttled, "failed"),
        _tile("re-generations (URL expired)", b.expired),
        _tile("total API time", _duration(b.api_ms)),
        _tile("downloads", f"{b.downloads} ({_size(b.download_bytes)})"),
    ]
    if b.download_failures:
        parts.append(_tile("failed downloads", b.download_failures, "failed"))
    if b.retried:
        parts.append(_tile("jobs retried", b.retried))
    parts.append("</div>")
    errors = b.failed_calls_by_code
    if errors:
        rows = [
            [
                f"<td><code>{_e(code)}</code></td>",
                _td(rule_for(code).error_class),
                _td(n, "n"),
            ]
            for code, n in errors.items()
        ]
        parts.append(_table([("answer", ""), ("kind", ""), ("calls", "n")], rows, "calls-by-code"))
    return "\n".join(parts)


def _failed_section(b: BatchReport) -> str:
    if not b.failed_total:
        return ""
    parts = [f"<h3>Failed jobs ({b.failed_total})</h3>"]
    by_code = [
        [f"<td><code>{_e(code)}</code></td>", _td(n, "n"), _td(advice_for(code))]
        for code, n in b.failed_by_code.items()
    ]
    parts.append(
        _table([("code", ""), ("jobs", "n"), ("what to do", "")], by_code, "failed-by-code")
    )
    rows = [
        [
            _td(job.id, "id"),
            _code_td(job.code),
            _td(job.message, "msg"),
            _td(job.attempts, "n"),
            _td(advice_for(job.code), "msg"),
            _url_cell(job),
        ]
        for job in b.failed
    ]
    parts.append(
        _table(
            [
                ("id", ""),
                ("code", ""),
                ("message", ""),
                ("attempts", "n"),
                ("what to do", ""),
                ("row", ""),
            ],
            rows,
            "failed",
        )
    )
    parts.append(
        _more(
            len(b.failed),
            b.failed_total,
            "failed jobs",
            f"<code>changeclothes export --batch {_e(b.name)}</code> lists them all.",
        )
    )
    return "\n".join(parts)


def _unfinished_section(b: BatchReport) -> str:
    if not b.unfinished_total:
        return ""
    parts = [
        f"<h3>Not finished ({b.unfinished_total})</h3>",
        '<p class="note">Still queued, in flight, awaiting download or waiting on an identical '
        "job. <code>changeclothes run</code> picks them up where they stopped.</p>",
    ]
    rows = [
        [
            _td(job.id, "id"),
            _td(job.state),
            _td(job.attempts, "n"),
            _code_td(job.code),
            _td(job.message, "msg"),
            _td(_when(job.not_before)),
        ]
        for job in b.unfinished
    ]
    parts.append(
        _table(
            [
                ("id", ""),
                ("state", ""),
                ("attempts", "n"),
                ("last error", ""),
                ("message", ""),
                ("not before", ""),
            ],
            rows,
            "unfinished",
        )
    )
    parts.append(
        _more(
            len(b.unfinished),
            b.unfinished_total,
            "unfinished jobs",
            f"<code>changeclothes export --batch {_e(b.name)}</code> lists them all.",
        )
    )
    return "\n".join(parts)


def _figure(image: ResultImage, out_dir: Path, report_dir: Path, batch: str) -> tuple[str, bool]:
    found = locate_result(image.output_path, out_dir, batch)
    caption = f"<figcaption>{_e(image.id)}</figcaption>"
    if found is None:
        body = f'<div class="missing">file missing:<br>{_e(image.output_path)}</div>'
        return f'<figure class="result missing-file">{body}{caption}</figure>', False
    href = _e(relative_href(found, report_dir))
    body = (
        f'<a href="{href}"><img src="{href}" loading="lazy" decoding="async" '
        f'width="{THUMB_WIDTH}" alt="{_e(image.id)}"></a>'
    )
    return f'<figure class="result">{body}{caption}</figure>', True


def _gallery_section(b: BatchReport, limit: int, out_dir: Path, report_dir: Path) -> str:
    if not b.done or limit <= 0:
        return ""
    figures = [_figure(image, out_dir, report_dir, b.name) for image in b.gallery]
    missing = sum(1 for _, present in figures if not present)
    parts = [f"<h3>Results ({b.done})</h3>"]
    if missing:
        parts.append(
            f'<p class="note">{missing} of the results shown are no longer on disk where the run '
            "wrote them.</p>"
        )
    parts.append('<div class="gallery">')
    parts += [figure for figure, _ in figures]
    parts.append("</div>")
    shown = len(b.gallery)
    parts.append(
        _more(
            shown, b.done, "results", "the rest are in the results folder; the export lists them."
        )
    )
    return "\n".join(parts)


def _batch_section(
    i: int, b: BatchReport, data: ReportData, out_dir: Path, report_dir: Path
) -> str:
    tiles = [_tile("jobs", b.total)]
    for state in STATE_ORDER:
        n = b.counts.get(str(state), 0)
        if n or state in (JobState.DONE, JobState.FAILED, JobState.QUEUED):
            css = {JobState.DONE: "done", JobState.FAILED: "failed"}.get(state, "waiting")
            tiles.append(_tile(str(state), n, css))
    return "\n".join(
        part
        for part in (
            f'<section class="batch" id="batch-{i}">',
            f"<h2>Batch {_e(b.name)}</h2>",
            f'<p class="meta">Submitted {_e(_when(b.submitted_at))}</p>',
            '<div class="tiles">',
            *tiles,
            "</div>",
            _calls_section(b),
            _failed_section(b),
            _unfinished_section(b),
            _gallery_section(b, data.gallery_limit, out_dir, report_dir),
            "</section>",
        )
        if part
    )


def render_report(data: ReportData, report_path: Path, out_dir: Path) -> str:
    """The whole report as one HTML document, for a file that will be written at
    `report_path` (result links are relative to its folder); `out_dir` is the results folder.
    """
    report_dir = Path(os.path.abspath(report_path)).parent
    title = "changeclothes report"
    if len(data.batches) == 1:
        title += f": {data.batches[0].name}"
    if data.batches:
        nav = "<nav>" + "".join(
            f'<a href="#batch-{i + 1}">{_e(b.name)}</a>' for i, b in enumerate(data.batches)
        )
        body = [
            nav + "</nav>",
            _overview(data),
            *(
                _batch_section(i + 1, b, data, out_dir, report_dir)
                for i, b in enumerate(data.batches)
            ),
        ]
    else:
        body = ["<p>No batches yet: submit a manifest with <code>changeclothes submit</code>.</p>"]
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{_e(title)}</title>",
            f"<style>{_CSS}</style>",
            "</head>",
            "<body>",
            f"<h1>{_e(title)}</h1>",
            f'<p class="meta">Written {_e(_when(data.generated_at))} from {_e(data.database)}</p>',
            *body,
            "</body>",
            "</html>",
            "",
        ]
    )


def write_report(data: ReportData, report_path: Path, out_dir: Path) -> Path:
    """Render and write the report; a reader never sees half a file. Returns its path."""
    text = render_report(data, report_path, out_dir)
    report_path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".report-", suffix=".part", dir=report_path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp, 0o666 & ~umask)  # as an ordinary new file, not mkstemp's 0600
        os.replace(temp, report_path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return report_path

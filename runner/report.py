"""The morning-after report: one self-contained HTML file from `ReportData`.

No external assets: the CSS and the review sheet's short script are inline, thumbnails are
embedded as `data:` URIs, and only the links to full-size results are paths relative to the
report's folder (or, for results in a bucket, presigned URLs that expire), so the file alone
can be mailed.
Every value that came from the database or a manifest goes through `html.escape` (the `esc`
helper) before it touches the page; the structure around it is literal text.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from runner.api.errors import ErrorClass, rule_for
from runner.atomic import atomic_text_file
from runner.report_html import (
    CSS,
    code_td,
    duration,
    esc,
    more,
    size,
    table,
    td,
    tile,
    when,
)
from runner.report_sheet import CSS as SHEET_CSS
from runner.report_sheet import SCRIPT, sheet_data, sheet_section
from runner.store import JobState
from runner.store.reports import BatchReport, JobLine, ReportData

if TYPE_CHECKING:
    from runner.report_bucket import BucketLinks

DEFAULT_NAME = "report.html"

_CLASS_HINTS = {
    ErrorClass.THROTTLE: "The account was busy; such answers cost no attempt.",
    ErrorClass.CLOCK: "This machine's clock is off; the runner corrects it by itself.",
    ErrorClass.TRANSIENT: "A passing fault of the service: `changeclothes retry --code {code}`.",
    ErrorClass.BAD_ROW: "The service refused this row's images or values: fix the row "
    "(or the image at its URL) and submit it again with --replace.",
    ErrorClass.HALT: "An account-level problem.",
    ErrorClass.WAIT: "The service was still being activated.",
    ErrorClass.OUTAGE: "The endpoint could not be reached: check the network, then rerun.",
}


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


def _overview(data: ReportData) -> str:
    header = [
        ("batch", ""),
        ("submitted", ""),
        *((str(s), "n") for s in JobState),
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
                f'<td><a href="#batch-{i + 1}">{esc(b.name)}</a></td>',
                td(when(b.submitted_at)),
                *(td(b.counts.get(str(s), 0), "n") for s in JobState),
                td(b.total, "n"),
                td(b.paid_calls, "n"),
                td(b.throttled, "n"),
                td(b.calls - b.paid_calls - b.throttled, "n"),
                td(b.expired, "n"),
                td(duration(b.api_ms), "n"),
            ]
        )
    if len(data.batches) > 1:
        total = sum(b.total for b in data.batches)
        rows.append(
            [
                "<td><b>all batches</b></td>",
                td(""),
                *(td(sum(b.counts.get(str(s), 0) for b in data.batches), "n") for s in JobState),
                td(total, "n"),
                td(sum(b.paid_calls for b in data.batches), "n"),
                td(sum(b.throttled for b in data.batches), "n"),
                td(sum(b.calls - b.paid_calls - b.throttled for b in data.batches), "n"),
                td(sum(b.expired for b in data.batches), "n"),
                td(duration(sum(b.api_ms for b in data.batches)), "n"),
            ]
        )
    return table(header, rows, "overview")


def _url_cell(job: JobLine) -> str:
    return (
        f'<td class="url">{esc(job.clothes_type)}<br>model: {esc(job.model_url)}'
        f"<br>clothes: {esc(job.clothes_url)}</td>"
    )


def _calls_section(b: BatchReport) -> str:
    parts = ["<h3>API calls</h3>", '<div class="tiles">']
    parts += [
        tile("paid calls", b.paid_calls, "done"),
        tile("throttled answers", b.throttled, "waiting"),
        tile("failed calls", b.calls - b.paid_calls - b.throttled, "failed"),
        tile("re-generations (URL expired)", b.expired),
        tile("total API time", duration(b.api_ms)),
        tile("downloads", f"{b.downloads} ({size(b.download_bytes)})"),
    ]
    if b.download_failures:
        parts.append(tile("failed downloads", b.download_failures, "failed"))
    if b.retried:
        parts.append(tile("jobs retried", b.retried))
    parts.append("</div>")
    errors = b.failed_calls_by_code
    if errors:
        rows = [
            [
                f"<td><code>{esc(code)}</code></td>",
                td(rule_for(code).error_class),
                td(n, "n"),
            ]
            for code, n in errors.items()
        ]
        parts.append(table([("answer", ""), ("kind", ""), ("calls", "n")], rows, "calls-by-code"))
    return "\n".join(parts)


def _failed_section(b: BatchReport) -> str:
    if not b.failed_total:
        return ""
    parts = [f"<h3>Failed jobs ({b.failed_total})</h3>"]
    by_code = [
        [f"<td><code>{esc(code)}</code></td>", td(n, "n"), td(advice_for(code))]
        for code, n in b.failed_by_code.items()
    ]
    parts.append(
        table([("code", ""), ("jobs", "n"), ("what to do", "")], by_code, "failed-by-code")
    )
    rows = [
        [
            td(job.id, "id"),
            code_td(job.code),
            td(job.message, "msg"),
            td(job.attempts, "n"),
            td(advice_for(job.code), "msg"),
            _url_cell(job),
        ]
        for job in b.failed
    ]
    parts.append(
        table(
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
        more(
            len(b.failed),
            b.failed_total,
            "failed jobs",
            f"<code>changeclothes export --batch {esc(b.name)}</code> lists them all.",
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
            td(job.id, "id"),
            td(job.state),
            td(job.attempts, "n"),
            code_td(job.code),
            td(job.message, "msg"),
            td(when(job.not_before)),
        ]
        for job in b.unfinished
    ]
    parts.append(
        table(
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
        more(
            len(b.unfinished),
            b.unfinished_total,
            "unfinished jobs",
            f"<code>changeclothes export --batch {esc(b.name)}</code> lists them all.",
        )
    )
    return "\n".join(parts)


def _review_section(
    i: int,
    b: BatchReport,
    data: ReportData,
    out_dir: Path,
    report_dir: Path,
    links: BucketLinks | None,
) -> str:
    if not b.sheet:
        return ""
    sheet = sheet_data(
        b,
        data.thumbnails,
        advice_for,
        lambda job: locate_result(job.output_path or "", out_dir, b.name),
        lambda found: relative_href(found, report_dir),
        remote=links.results if links is not None else None,
    )
    note = ""
    if links is not None and any(
        r.href for j in b.sheet if (r := links.results.get(j.output_path or ""))
    ):
        note = (
            '<p class="note">Results in the bucket link to presigned URLs valid until '
            f"{esc(when(links.expires_at))}: until then anyone with this file can open them; "
            "after that, make the report again for fresh links.</p>"
        )
    return sheet_section(i, b, sheet, note)


def _invalid_section(b: BatchReport) -> str:
    if not b.invalid_total:
        return ""
    rows = [[td(r.line, "n"), td(r.id or "", "id"), td(r.problems, "msg")] for r in b.invalid]
    return "\n".join(
        [
            f"<h3>Invalid rows, not queued ({b.invalid_total})</h3>",
            '<p class="note">Rows the latest submit skipped (<code>--skip-invalid</code>): fix '
            "them in the manifest and submit it again.</p>",
            table([("line", "n"), ("id", ""), ("problems", "")], rows, "invalid"),
            more(
                len(b.invalid),
                b.invalid_total,
                "invalid rows",
                f"<code>changeclothes export --state invalid --batch {esc(b.name)}</code> "
                "lists them all.",
            ),
        ]
    )


def _batch_section(
    i: int,
    b: BatchReport,
    data: ReportData,
    out_dir: Path,
    report_dir: Path,
    links: BucketLinks | None = None,
) -> str:
    tiles = [tile("jobs", b.total)]
    for state in JobState:
        n = b.counts.get(str(state), 0)
        if n or state in (JobState.DONE, JobState.FAILED, JobState.QUEUED):
            css = {JobState.DONE: "done", JobState.FAILED: "failed"}.get(state, "waiting")
            tiles.append(tile(str(state), n, css))
    return "\n".join(
        part
        for part in (
            f'<section class="batch" id="batch-{i}">',
            f"<h2>Batch {esc(b.name)}</h2>",
            f'<p class="meta">Submitted {esc(when(b.submitted_at))}</p>',
            '<div class="tiles">',
            *tiles,
            "</div>",
            _calls_section(b),
            _failed_section(b),
            _unfinished_section(b),
            _invalid_section(b),
            _review_section(i, b, data, out_dir, report_dir, links),
            "</section>",
        )
        if part
    )


def render_report(
    data: ReportData, report_path: Path, out_dir: Path, links: BucketLinks | None = None
) -> str:
    """The whole report as one HTML document, for a file that will be written at
    `report_path` (result links are relative to its folder); `out_dir` is the results folder;
    `links` the thumbnails and presigned links of results in a bucket.
    """
    report_dir = Path(os.path.abspath(report_path)).parent
    title = "changeclothes report"
    if len(data.batches) == 1:
        title += f": {data.batches[0].name}"
    if data.batches:
        nav = "<nav>" + "".join(
            f'<a href="#batch-{i + 1}">{esc(b.name)}</a>' for i, b in enumerate(data.batches)
        )
        body = [
            nav + "</nav>",
            _overview(data),
            *(
                _batch_section(i + 1, b, data, out_dir, report_dir, links)
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
            f"<title>{esc(title)}</title>",
            f"<style>{CSS}{SHEET_CSS}</style>",
            "</head>",
            "<body>",
            f"<h1>{esc(title)}</h1>",
            f'<p class="meta">Written {esc(when(data.generated_at))} from {esc(data.database)}</p>',
            *body,
            f"<script>{SCRIPT}</script>",
            "</body>",
            "</html>",
            "",
        ]
    )


def write_report(
    data: ReportData, report_path: Path, out_dir: Path, links: BucketLinks | None = None
) -> Path:
    """Render and write the report; a reader never sees half a file. Returns its path."""
    text = render_report(data, report_path, out_dir, links)
    report_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_text_file(report_path) as fh:
        fh.write(text)
    return report_path

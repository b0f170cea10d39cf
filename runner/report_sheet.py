"""The report's review sheet: per job, model | garment | result side by side, with its id,
clothes type, state and, for a failure, code, message and what to do.

Self-contained: every thumbnail is a small WebP embedded as a `data:` URI (inputs from the
preflight's cache, results made here from the files on disk); only the links to full-size
results are relative paths. Usable at 10,000 jobs: the jobs are one JSON block (each distinct
thumbnail once) and a short script renders one page of rows at a time, filtered by state and
clothes type, so the page never holds more than `PAGE_ROWS` rows of images. Data is only ever
set as text (`textContent`) or as a `data:`/relative URL: nothing from the queue is markup.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from runner.report_html import esc
from runner.store.lifecycle import JobState
from runner.store.reports import BatchReport, SheetJob

if TYPE_CHECKING:
    from runner.report_bucket import BucketResult

PAGE_ROWS = 50
THUMB_SIDE = 120
QUALITY = 60


def thumbnail_uri(data: bytes) -> str | None:
    """A small WebP `data:` URI of an image's bytes; None when it does not decode."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.draft("RGB", (THUMB_SIDE * 2, THUMB_SIDE * 2))  # JPEG: decode at 1/2..1/8
            small = image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    small.thumbnail((THUMB_SIDE, THUMB_SIDE))
    out = io.BytesIO()
    small.save(out, "WEBP", quality=QUALITY, method=4)
    return "data:image/webp;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def result_thumbnail(path: Path) -> str | None:
    try:
        return thumbnail_uri(path.read_bytes())
    except OSError:
        return None


class _Images:
    """Each distinct thumbnail once, referred to by its index."""

    def __init__(self) -> None:
        self.uris: list[str] = []
        self._index: dict[str, int] = {}

    def add(self, key: str, make: Callable[[], str | None]) -> int | None:
        if key not in self._index:
            uri = make()
            if uri is None:
                return None
            self._index[key] = len(self.uris)
            self.uris.append(uri)
        return self._index[key]


def sheet_data(
    b: BatchReport,
    thumbnails: dict[str, bytes],
    advice: Callable[[str | None], str],
    locate: Callable[[SheetJob], Path | None],
    href: Callable[[Path], str],
    remote: Mapping[str, BucketResult] | None = None,
) -> dict[str, object]:
    """The sheet's rows and thumbnails; results in a bucket come from `remote` (by their
    `s3://` reference: a thumbnail fetched when the report was made and a presigned link)."""
    images = _Images()
    rows = []

    def input_thumb(url: str) -> int | None:
        data = thumbnails.get(url)
        return None if data is None else images.add(url, lambda: thumbnail_uri(data))

    def known(key: str, uri: str | None) -> int | None:
        return None if uri is None else images.add(key, lambda: uri)

    def result_thumb(found: Path) -> int | None:
        return images.add(f"result:{found}", lambda: result_thumbnail(found))

    for job in b.sheet:
        result = None
        link: str | None = None
        in_bucket = remote.get(job.output_path) if remote and job.output_path else None
        if in_bucket is not None:
            found = None
            result = known(f"result:{job.output_path}", in_bucket.thumbnail)
            link = in_bucket.href
            missing = in_bucket.missing
        else:
            found = locate(job) if job.output_path else None
            if found is not None:
                result = result_thumb(found)
                link = href(found)
            missing = bool(job.output_path) and found is None
        rows.append(
            {
                "id": job.id,
                "state": job.state,
                "type": job.clothes_type,
                "code": job.code,
                "message": job.message,
                "advice": advice(job.code) if job.state == JobState.FAILED else "",
                "model": input_thumb(job.model_url),
                "clothes": input_thumb(job.clothes_url),
                "result": result,
                "href": link,
                "missing": missing,
            }
        )
    return {"rows": rows, "images": images.uris, "total": b.total, "page": PAGE_ROWS}


def _json_for_script(data: object) -> str:
    # Inside <script> only "</" could end the block early: escape every "<" (and & and >).
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def sheet_section(index: int, b: BatchReport, data: dict[str, object], links_note: str = "") -> str:
    rows: list[dict[str, object]] = data["rows"]  # type: ignore[assignment]
    states = sorted({str(r["state"]) for r in rows})
    types = sorted({str(r["type"]) for r in rows})

    def select(css: str, label: str, values: list[str]) -> str:
        options = "".join(f'<option value="{esc(v)}">{esc(v)}</option>' for v in values)
        return (
            f'<label>{label} <select class="{css}"><option value="">all</option>'
            f"{options}</select></label>"
        )

    shown = len(rows)
    note = (
        f'<p class="note">The first {shown} of {b.total} jobs; the export lists them all.</p>'
        if shown < b.total
        else ""
    )
    missing = sum(1 for r in rows if r["missing"])
    gone = (
        f'<p class="note">{missing} of the results shown are no longer on disk where the run '
        "wrote them, or could not be read from their bucket.</p>"
        if missing
        else ""
    )
    return "\n".join(
        [
            f'<section class="review" id="review-{index}">',
            f"<h3>Review sheet ({b.total} jobs)</h3>",
            note + gone + links_note,
            '<div class="filters">',
            select("f-state", "state", states),
            select("f-type", "clothes type", types),
            '<button type="button" class="prev">&#8592; previous</button>',
            '<span class="page-info"></span>',
            '<button type="button" class="next">next &#8594;</button>',
            "</div>",
            '<table class="sheet"><thead><tr><th>model</th><th>garment</th><th>result</th>'
            "<th>job</th></tr></thead><tbody></tbody></table>",
            "<noscript><p>The review sheet needs JavaScript; the tables above list the "
            "failed and unfinished jobs.</p></noscript>",
            f'<script type="application/json" class="sheet-data">{_json_for_script(data)}</script>',
            "</section>",
        ]
    )


SCRIPT = """
(() => {
  const cell = (text, css) => {
    const td = document.createElement("td");
    td.textContent = text || "";
    if (css) td.className = css;
    return td;
  };
  for (const section of document.querySelectorAll("section.review")) {
    const data = JSON.parse(section.querySelector("script.sheet-data").textContent);
    const body = section.querySelector("tbody");
    const state = section.querySelector(".f-state");
    const type = section.querySelector(".f-type");
    const prev = section.querySelector(".prev");
    const next = section.querySelector(".next");
    const info = section.querySelector(".page-info");
    let page = 0;
    const thumb = (index, none, href) => {
      if (index === null) return cell(none, "thumb none");
      const td = cell("", "thumb");
      const img = document.createElement("img");
      img.src = data.images[index];
      img.alt = none;
      if (href) {
        const a = document.createElement("a");
        a.href = href;
        a.appendChild(img);
        td.appendChild(a);
      } else td.appendChild(img);
      return td;
    };
    const render = () => {
      const rows = data.rows.filter((r) =>
        (!state.value || r.state === state.value) && (!type.value || r.type === type.value));
      const pages = Math.max(1, Math.ceil(rows.length / data.page));
      page = Math.min(page, pages - 1);
      const shown = rows.slice(page * data.page, (page + 1) * data.page);
      body.replaceChildren(...shown.map((r) => {
        const tr = document.createElement("tr");
        tr.className = "job s-" + r.state;
        tr.dataset.state = r.state;
        tr.dataset.type = r.type;
        tr.dataset.id = r.id;
        const job = cell("", "job");
        const lines = [["b", r.id], ["span", r.type + " \\u00b7 " + r.state]];
        if (r.code) lines.push(["code", r.code]);
        if (r.message) lines.push(["span", r.message]);
        if (r.advice) lines.push(["em", r.advice]);
        for (const [tag, text] of lines) {
          const el = document.createElement(tag);
          el.textContent = text;
          job.appendChild(el);
        }
        const result = r.missing ? "result file missing" : r.state === "done" ? "no thumbnail" :
          ["failed", "cancelled"].includes(r.state) ? "no result" : "no result yet";
        tr.append(thumb(r.model, "no model thumbnail"), thumb(r.clothes, "no garment thumbnail"),
                  thumb(r.result, result, r.href), job);
        return tr;
      }));
      info.textContent = rows.length ? `page ${page + 1} of ${pages} \\u00b7 ${rows.length} jobs`
                                     : "no job matches";
      prev.disabled = page === 0;
      next.disabled = page >= pages - 1;
    };
    state.addEventListener("change", () => { page = 0; render(); });
    type.addEventListener("change", () => { page = 0; render(); });
    prev.addEventListener("click", () => { page -= 1; render(); });
    next.addEventListener("click", () => { page += 1; render(); });
    render();
  }
})();
"""

CSS = """
.filters { display: flex; gap: 12px; align-items: center; margin: 6px 0; flex-wrap: wrap; }
table.sheet td.thumb { width: 132px; text-align: center; vertical-align: middle; }
table.sheet td.thumb img { max-width: 120px; max-height: 120px; display: block; margin: auto; }
table.sheet td.none { color: var(--muted); font-size: 12px; }
table.sheet td.job > * { display: block; overflow-wrap: anywhere; }
table.sheet td.job em { color: var(--warn); font-style: normal; font-size: 12.5px; }
table.sheet tr.s-failed td.job b { color: var(--bad); }
table.sheet tr.s-done td.job b { color: var(--ok); }
"""

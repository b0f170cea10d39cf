"""`changeclothes report`: one self-contained HTML page that tells the truth about the queue."""

from __future__ import annotations

import json
import os
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import anyio
import pytest
from click.testing import CliRunner

from runner.cli import cli
from runner.fake import serve_fake
from runner.report import render_report
from runner.store import open_store
from runner.store.reports import ReportData, report_data
from tests.report_support import DECODE, ODD_ID, RPC, XSS, build_morning
from tests.run_support import all_jobs, run, submit, write_manifest
from tests.store_fixtures import database_for


class Page(HTMLParser):
    """The parts of a report a test looks at: tables by class, links, images, every tag."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[str] = []
        self.links: list[str] = []
        self.text: list[str] = []
        self.sheets: list[dict[str, Any]] = []  # the review sheets' data blocks
        self.scripts: list[dict[str, str | None]] = []
        self._sheet: list[str] | None = None
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.tags.append((tag, values))
        if tag == "table":
            self._table = values.get("class") or ""
            self.tables.setdefault(self._table, [])
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = []
        elif tag == "img":
            self.images.append(values.get("src") or "")
        elif tag == "a":
            self.links.append(values.get("href") or "")
        elif tag == "script":
            self.scripts.append(values)
            if values.get("class") == "sheet-data":
                self._sheet = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._sheet is not None:
            self.sheets.append(json.loads("".join(self._sheet)))
            self._sheet = None
        if tag == "td" and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            if self._row:
                self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._sheet is not None:
            self._sheet.append(data)
            return
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    @property
    def result_links(self) -> list[str]:
        """The review sheets' links to full-size results (relative to the report)."""
        return [r["href"] for sheet in self.sheets for r in sheet["rows"] if r["href"]]


def invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_report_shows_counts_calls_failures_and_results(tmp_path: Path) -> None:
    m = anyio.run(build_morning, tmp_path)
    output = invoke("report", "--db", m.db, "--out", str(m.out))
    report = m.out / "report.html"
    assert f"Report: {report}" in output.splitlines()[-1]
    page = Page(report.read_text())

    overview = page.tables["overview"][0]
    assert overview[0] == m.batch
    # queued, submitting, generated, linked, done, failed, total
    assert overview[2:10] == ["3", "0", "0", "0", "4", "2", "0", "9"]  # ... cancelled, total
    paid, throttled, failed_calls, regenerations = overview[10:14]
    assert int(paid) == m.paid_calls == 5
    assert int(throttled) == m.throttled == 1
    assert int(failed_calls) == sum(m.failed_calls.values()) - m.throttled
    assert int(regenerations) == m.expired == 1
    assert overview[14] == "0:00:10"  # m.api_ms, summed over the calls

    calls = {row[0]: int(row[2]) for row in page.tables["calls-by-code"]}
    assert calls == m.failed_calls

    failed = {row[0]: (row[1], row[2], int(row[3]), row[4]) for row in page.tables["failed"]}
    assert {k: v[0] for k, v in failed.items()} == m.failed
    assert failed["f-rpc"][2] == 1, "attempts"
    assert "retry --code FailedOperation.RpcFail" in failed["f-rpc"][3]
    assert failed["e-decode"][1] == f"Image decoding failed. {XSS}"  # shown, as text

    unfinished = {row[0]: row for row in page.tables["unfinished"]}
    assert {k: v[1] for k, v in unfinished.items()} == m.unfinished
    assert unfinished["g-throttled"][3] == "RequestLimitExceeded.JobNumExceed"
    assert unfinished["h-later"][3] == RPC and unfinished["h-later"][5].endswith("UTC")

    sheet = page.sheets[0]
    assert [r["id"] for r in sheet["rows"]] == [
        "a-done", "b-regen", "c-done", ODD_ID, "e-decode", "f-rpc", "g-throttled", "h-later",
        "i-fresh",
    ]  # fmt: skip
    assert len(page.result_links) == len(m.done) == 4
    shown = {(report.parent / unquote(src)).resolve() for src in page.result_links}
    assert shown == {p.resolve() for p in m.done.values()}
    by_id = {r["id"]: r for r in sheet["rows"]}
    assert by_id["e-decode"]["code"] == DECODE and by_id["e-decode"]["advice"]
    assert by_id["a-done"]["result"] is not None and by_id["i-fresh"]["result"] is None


def test_a_manifest_id_or_error_message_cannot_inject_markup(tmp_path: Path) -> None:
    m = anyio.run(build_morning, tmp_path)
    invoke("report", "--db", m.db, "--out", str(m.out))
    text = (m.out / "report.html").read_text()

    # Only the report's own two scripts: the sheet's data block and its renderer.
    assert text.lower().count("<script") == 2
    assert "<script>alert" not in text and "</script>alert" not in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in text
    page = Page(text)
    assert {tag for tag, _ in page.tags} <= {
        "html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "nav", "a",
        "table", "thead", "tbody", "tr", "th", "td", "code", "br", "b", "div", "span",
        "section", "figure", "figcaption", "img", "script", "label", "select", "option",
        "button", "noscript",
    }  # fmt: skip
    for _, attrs in page.tags:
        assert not [name for name in attrs if name.startswith("on")], attrs
    # The message is data for the sheet, never markup.
    messages = [r["message"] for r in page.sheets[0]["rows"]]
    assert f"Image decoding failed. {XSS}" in messages
    # The odd id survives as data and as a link to its own file.
    assert ODD_ID in [r["id"] for r in page.sheets[0]["rows"]]
    odd = [src for src in page.result_links if unquote(src).endswith(f"{ODD_ID}.jpg")]
    assert len(odd) == 1 and "#" not in odd[0] and "'" not in odd[0]
    assert (m.out / unquote(odd[0])).is_file()


def test_report_is_self_contained(tmp_path: Path) -> None:
    m = anyio.run(build_morning, tmp_path)
    invoke("report", "--db", m.db, "--out", str(m.out))
    page = Page((m.out / "report.html").read_text())
    assert not [tag for tag, _ in page.tags if tag in ("link", "iframe", "object")]
    assert not [s for s in page.scripts if "src" in s], "no script from elsewhere"
    assert page.images == [], "every image is drawn from the embedded data"
    thumbnails = page.sheets[0]["images"]
    assert len(thumbnails) == 4 and all(t.startswith("data:image/webp;base64,") for t in thumbnails)
    for href in [*page.links, *page.result_links]:
        assert href.startswith("#") or ("://" not in href and not href.startswith("/")), href


def test_links_are_relative_to_the_report_from_a_relative_results_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    m = anyio.run(lambda: build_morning(tmp_path, out=Path("results")))
    assert not Path(m.done["a-done"]).is_absolute()

    elsewhere = tmp_path / "reports" / "today.html"
    invoke("report", "--db", m.db, "--output", str(elsewhere))  # --out defaults to results/
    page = Page(elsewhere.read_text())
    assert "../results/spring/a-done.jpg" in page.result_links
    for src in page.result_links:
        assert (elsewhere.parent / unquote(src)).is_file(), src


def test_moved_results_folder_is_found_and_missing_files_are_flagged(tmp_path: Path) -> None:
    m = anyio.run(build_morning, tmp_path)
    moved = tmp_path / "moved"
    os.rename(m.out, moved)
    (moved / m.batch / "c-done.jpg").unlink()
    invoke("report", "--db", m.db, "--out", str(moved))
    text = (moved / "report.html").read_text()
    page = Page(text)
    assert len(page.result_links) == 3, "c-done is gone"
    for src in page.result_links:
        assert (moved / unquote(src)).is_file(), src
    assert "1 of the results shown are no longer on disk" in text


def test_review_sheet_is_capped_with_a_note(tmp_path: Path) -> None:
    m = anyio.run(build_morning, tmp_path)
    invoke("report", "--db", m.db, "--out", str(m.out), "--gallery-limit", "2")
    text = (m.out / "report.html").read_text()
    assert len(Page(text).sheets[0]["rows"]) == 2
    assert "The first 2 of 9 jobs" in text


def test_failed_and_unfinished_lists_are_capped(tmp_path: Path) -> None:
    m = anyio.run(build_morning, tmp_path)

    async def data() -> ReportData:
        async with await open_store(m.db) as store:
            return await report_data(store, row_limit=1)

    capped = anyio.run(data)
    batch = capped.batches[0]
    assert len(batch.failed) == 1 and batch.failed_total == 2
    assert len(batch.unfinished) == 1 and batch.unfinished_total == 3
    assert batch.failed_by_code == {DECODE: 1, RPC: 1}, "the totals stay whole"
    text = render_report(capped, m.out / "report.html", m.out)
    assert "Showing the first 1 of 2 failed jobs" in text
    assert "Showing the first 1 of 3 unfinished jobs" in text


@pytest.mark.anyio
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
async def test_report_data_on_each_backend(backend: str, tmp_path: Path) -> None:
    async with database_for(backend, tmp_path) as db:
        m = await build_morning(tmp_path, db=db)
        async with await open_store(db) as store:
            data = await report_data(store, m.batch)
    [batch] = data.batches
    assert (batch.done, batch.failed_total, batch.unfinished_total) == (4, 2, 3)
    assert (batch.paid_calls, batch.throttled, batch.expired) == (m.paid_calls, m.throttled, 1)
    assert batch.failed_calls_by_code == dict(
        sorted(m.failed_calls.items(), key=lambda item: (-item[1], item[0]))
    )
    assert batch.api_ms == m.api_ms
    assert (batch.downloads, batch.download_bytes) == (
        4,
        sum(p.stat().st_size for p in m.done.values()),
    )
    assert [(j.id, j.code) for j in batch.failed] == sorted(
        m.failed.items(), key=lambda item: (item[1], item[0])
    )
    assert [j.id for j in batch.unfinished] == list(m.unfinished)
    assert [r.output_path for r in batch.gallery] == [str(p) for p in m.done.values()]


def test_unknown_batch_and_missing_database_are_usage_errors(tmp_path: Path) -> None:
    m = anyio.run(build_morning, tmp_path)
    result = CliRunner().invoke(cli, ["report", "--db", m.db, "--batch", "nope"])
    assert result.exit_code == 2
    assert "no batch named 'nope'" in result.output
    result = CliRunner().invoke(cli, ["report", "--db", str(tmp_path / "none.db")])
    assert result.exit_code == 2
    assert not (tmp_path / "none.db").exists()


def test_report_of_a_real_run_lists_exactly_the_failed_jobs(tmp_path: Path) -> None:
    db = str(tmp_path / "q.db")
    out = tmp_path / "out"

    async def scenario() -> Counter[str]:
        async with serve_fake(faults={DECODE: 0.3}, seed=11) as server:
            await submit(db, write_manifest(tmp_path / "night.csv", 24), server.url + "/")
            result = await run(db, server, out, seed=11)
            assert result.exit_code == 1
            return Counter(server.stats()["calls"])

    calls = anyio.run(scenario)
    jobs = await_all_jobs(db)
    failed = {j["external_id"]: j["last_error_code"] for j in jobs if j["state"] == "failed"}
    done = [j for j in jobs if j["state"] == "done"]
    assert failed and done, "the seed gives both outcomes"
    assert set(failed.values()) == {DECODE}

    invoke("report", "--db", db, "--out", str(out))
    page = Page((out / "report.html").read_text())
    assert {row[0]: row[1] for row in page.tables["failed"]} == failed
    assert page.tables["failed-by-code"][0][:2] == [DECODE, str(len(failed))]
    overview = page.tables["overview"][0]
    assert int(overview[10]) == calls["OK"] == len(done), "paid calls"
    assert {row[0]: int(row[2]) for row in page.tables["calls-by-code"]} == {
        code: n for code, n in calls.items() if code != "OK"
    }
    assert len(page.result_links) == len(done)
    for src in page.result_links:
        assert (out / unquote(src)).is_file()


def await_all_jobs(db: str) -> list[dict[str, object]]:
    return anyio.run(all_jobs, db)

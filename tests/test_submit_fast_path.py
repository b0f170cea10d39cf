"""The shortcuts a large submit takes give exactly what the long way gives.

Plain rows skip the full row check, the dedupe key is built without json.dumps, ids spill
from memory to a scratch file, and a large insert builds the dedupe index afterwards: none
of it may change a verdict, a key already stored in a queue, or what a later submit finds.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.manifest import IdRegistry, ManifestRow, dedupe_key, derived_id, validate_row
from runner.manifest.plain import PlainRows
from runner.store import bulk, open_store
from runner.store.submit import submit_manifest
from tests.store_fixtures import job_rows, pairs, write_csv

TEXTS = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "a",
            "Dress",
            " upper body ",
            "LOWER_BODY",
            "hat",
            "https://x.test/m.jpg",
            " https://x.test/c.jpg?q=1 ",
            "https://x.test:99999/c.jpg",
            "https://ü.test/c.jpg",
            "http://x.test/a b.jpg",
            "ftp://x.test/m.jpg",
            "m.jpg",
            "sku-1",
            "CON",
            "a/b",
            "..",
            "café",
            "\ud800",
            "0",
            "1,2,3,4",
        ]
    ),
    st.text(max_size=12),
)
FIELDS = ["id", "model_url", "clothes_url", "clothes_type", "logo_add", "error_code"]


@settings(max_examples=400, deadline=None)
@given(
    st.dictionaries(st.sampled_from(FIELDS), st.one_of(TEXTS, st.none(), st.integers())),
    st.sampled_from([None, "https://cdn.test/base/"]),
)
def test_a_plain_row_gets_the_verdict_of_the_full_check(
    raw: dict[str, Any], base_url: str | None
) -> None:
    full = validate_row(7, raw, base_url)
    fast = PlainRows(base_url).check(7, raw)
    if all(isinstance(v, str) for v in raw.values()):  # as a CSV record too
        names = list(raw)
        csv_rows = PlainRows(base_url)
        csv_rows.columns(names)
        assert csv_rows.check_record(7, [raw[n] for n in names]) == fast
    if fast is None:
        return  # the full check decides (and words any problem)
    assert isinstance(full, ManifestRow), full
    line, ident, model_url, clothes_url, clothes_type, derived = fast
    assert (line, model_url, clothes_url, clothes_type) == (
        full.line,
        full.model_url,
        full.clothes_url,
        full.clothes_type,
    )
    assert full.options == {}
    assert derived == full.id_derived
    assert ident == ("" if derived else full.id)


def _stored_key(payload: list[Any]) -> str:
    """How keys already stored in queues were made."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


@given(st.text(), st.text(), st.sampled_from(["Dress", "Upper-body", 'a"b\\c\x01']))
def test_keys_of_rows_without_options_match_keys_already_stored(
    model: str, clothes: str, kind: str
) -> None:
    try:
        (model + clothes).encode()
    except UnicodeEncodeError:
        return  # lone surrogates never reach a key: the row check refuses them
    assert dedupe_key(model, clothes, kind, {}) == _stored_key(
        [model, clothes, kind, {"logo_add": 1}]
    )
    assert (
        derived_id(model, clothes, kind, {})
        == "auto-" + _stored_key([model, clothes, kind, {}])[:16]
    )


def test_ids_moved_out_of_memory_are_still_found_with_their_first_spelling() -> None:
    with IdRegistry(memory_ids=3) as ids:
        for line, ident in enumerate(["A-1", "b", "Café", "d", "e", "f", "g"], start=2):
            assert ids.claim(ident, line) is None
        assert ids.claim("a-1", 20) == (2, "A-1")  # in the scratch file by now
        assert ids.claim("cafe\u0301", 21) == (4, "Café")  # the same id in NFD
        assert ids.claim("G", 22) == (8, "g")
        assert ids.claim("h", 23) is None


@pytest.mark.anyio
async def test_a_large_insert_leaves_the_dedupe_index_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "REBUILD_MIN_ROWS", 1)  # SQLite only: PostgreSQL keeps it
    async with await open_store(str(tmp_path / "q.db")) as store:

        async def schema() -> list[Any]:
            async with store.transaction() as conn:
                query = "SELECT name, sql FROM sqlite_master WHERE tbl_name = 'jobs' ORDER BY 1"
                return list((await conn.exec_driver_sql(query)).all())

        before = await schema()
        rows = pairs(30)
        rows.append(["copy", *rows[3][1:]])  # the same picture as r3
        first = await submit_manifest(store, write_csv(tmp_path / "one.csv", rows), chunk_rows=7)
        assert (first.queued, first.linked_waiting) == (30, 1)
        assert await schema() == before
        # A second batch of the same pictures finds them through the index: nothing new to pay.
        again = await submit_manifest(store, write_csv(tmp_path / "two.csv", pairs(30)))
        assert (again.queued, again.linked_waiting) == (0, 30)
        firsts = {r["id"]: r["batch_name"] for r in await job_rows(store, "one")}
        assert {firsts[r["linked_job_id"]] for r in await job_rows(store, "two")} == {"one"}


@pytest.mark.anyio
async def test_a_big_queue_is_not_reindexed_for_a_smaller_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "REBUILD_MIN_ROWS", 1)
    statements: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    async with await open_store(str(tmp_path / "q.db")) as store:
        await submit_manifest(store, write_csv(tmp_path / "big.csv", pairs(40)))
        sa.event.listen(store.engine.sync_engine, "before_cursor_execute", note)
        small = await submit_manifest(
            store, write_csv(tmp_path / "small.csv", pairs(5, prefix="s"))
        )
    assert small.queued == 5
    assert statements and not [s for s in statements if "DROP INDEX" in s]

"""Whatever bytes a manifest holds, `submit` gives a clear answer and never half-queues."""

from __future__ import annotations

import itertools
from pathlib import Path

import anyio
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from runner.store import open_store
from runner.store.submit import SubmitResult, submit_manifest

_names = itertools.count()

FRAGMENTS = [
    "id",
    "model_url",
    "clothes_url",
    "clothes_type",
    "ModelUrl",
    "logo_rect",
    "logo_url",
    "https://x/m.jpg",
    "https://x/c.jpg",
    "m.jpg",
    "Dress",
    "upper body",
    "lower_body",
    "hat",
    "1,2,3,4",
    "0",
    "1",
    "a",
    "a/b",
    "..",
    "CON",
    ",",
    ";",
    "\t",
    '"',
    "\n",
    "\r\n",
    "\ufeff",
    "{",
    "}",
    "[",
    "]",
    ":",
    '"model_url"',
    '"clothes_type"',
    "null",
    " ",
    "\x00",
    "é",
]
SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def submit_bytes(db: str, folder: Path, data: bytes, suffix: str) -> None:
    name = f"m{next(_names)}"
    path = folder / f"{name}{suffix}"
    path.write_bytes(data)

    async def go() -> None:
        async with await open_store(db) as store:
            before = await store.state_totals()
            result: SubmitResult = await submit_manifest(store, path)
            after = await store.state_totals()
            added = sum(after.values()) - sum(before.values())
            batches = await store.counts()
            event("refused" if result.refused else f"queued {min(result.new, 2)}+ jobs")
            if result.refused:
                assert result.problems and result.invalid >= len(result.problems)
                assert all(p.line >= 1 and p.message for p in result.problems)
                assert added == 0 and name not in batches
            else:
                assert added == result.new
                assert sum(batches[name].values()) == result.new

    anyio.run(go)


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    folder = tmp_path_factory.mktemp("hypothesis-submit")
    return str(folder / "queue.db"), folder


@SETTINGS
@given(data=st.binary(max_size=3000), suffix=st.sampled_from([".csv", ".jsonl"]))
def test_random_bytes_never_crash_submit(place: tuple[str, Path], data: bytes, suffix: str) -> None:
    submit_bytes(*place, data, suffix)


@SETTINGS
@given(
    header=st.sampled_from(
        [
            "id,model_url,clothes_url,clothes_type\n",
            "ModelUrl;ClothesUrl;ClothesType;LogoRect;LogoUrl\n",
            "",
        ]
    ),
    body=st.lists(st.sampled_from(FRAGMENTS), max_size=80),
    suffix=st.sampled_from([".csv", ".jsonl"]),
)
def test_manifest_shaped_noise_never_crashes_submit(
    place: tuple[str, Path], header: str, body: list[str], suffix: str
) -> None:
    submit_bytes(*place, (header + "".join(body)).encode("utf-8"), suffix)


@SETTINGS
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["", "", "", "a", "b", "A", "x y", "../z"]),
            st.sampled_from(["https://x/m1.jpg"] * 8 + ["https://x/m2.jpg"] * 8 + ["m.jpg"]),
            st.sampled_from(["https://x/c1.jpg", "https://x/c2.jpg", "https://x/c3.jpg"]),
            st.sampled_from(["Dress"] * 8 + ["upper body"] * 8 + ["hat"]),
        ),
        max_size=8,
    ),
    sep=st.sampled_from([",", ";", "\t"]),
)
def test_mixed_valid_and_invalid_rows_queue_all_or_nothing(
    place: tuple[str, Path], rows: list[tuple[str, str, str, str]], sep: str
) -> None:
    lines = [sep.join(["id", "model_url", "clothes_url", "clothes_type"])]
    lines += [sep.join(row) for row in rows]
    submit_bytes(*place, ("\n".join(lines) + "\n").encode(), ".csv")

"""Hostile manifests through the real command line: text that is not valid Unicode, one id in
two Unicode spellings, a header of 100,000 bad columns. `validate` and `submit` must give the
same line-numbered problems, of bounded size, and never a traceback or a `--db` error."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
import tempfile
import unicodedata
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.cli import cli

M, C = "https://x/m.jpg", "https://x/c.jpg"
BAD_URL = "https://x/m\udc80.jpg"
MAX_MESSAGE_BYTES = 4096  # 50 problems at most, each a short sentence with short excerpts


def cli_run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def problems(stderr: str) -> list[str]:
    return [line.strip() for line in stderr.splitlines() if line.startswith("  ")]


def both(manifest: Path, db: Path) -> list[str]:
    """Validate and submit `manifest`; both must refuse it alike. Returns the problem lines."""
    checked = cli_run("validate", "--no-images", manifest)
    submitted = cli_run("submit", manifest, "--db", db)
    assert (checked.exit_code, submitted.exit_code) == (1, 1), (checked.output, submitted.output)
    assert "nothing was queued" in submitted.stderr
    assert problems(checked.stderr) == problems(submitted.stderr)
    for result in (checked, submitted):
        assert "Traceback" not in result.output and "--db" not in result.output
        assert len(result.output.encode()) < MAX_MESSAGE_BYTES, result.output[:500]
    return problems(checked.stderr)


def jsonl(path: Path, *rows: dict[str, object]) -> Path:
    # json.dumps spells a lone surrogate as the escape `\ud800`, as a hostile file would.
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_lone_surrogates_are_row_errors_in_both_commands(tmp_path: Path) -> None:
    manifest = jsonl(
        tmp_path / "m.jsonl",
        {"id": "ok-1", "model_url": M, "clothes_url": C, "clothes_type": "Dress"},
        {"id": "\ud800", "model_url": M, "clothes_url": C, "clothes_type": "Dress"},
        {"id": "ok-3", "model_url": BAD_URL, "clothes_url": C, "clothes_type": "Dress"},
        {"id": "ok-4", "ModelUrl": M, "ClothesUrl": C, "ClothesType": "Dress",
         "LogoParam": {"LogoUrl": "https://x/\ud83d.png"}},
        {"id": "ok-5", "model_url": M, "clothes_url": C, "clothes_type": "Dre\udfffss"},
    )  # fmt: skip
    found = both(manifest, tmp_path / "q.db")
    assert found == [
        "line 2: id '\\ud800' is not valid Unicode (character 1 is a lone surrogate)",
        "line 3: model_url 'https://x/m\\udc80.jpg' is not valid Unicode "
        "(character 12 is a lone surrogate)",
        "line 4: logo_url 'https://x/\\ud83d.png' is not valid Unicode "
        "(character 11 is a lone surrogate)",
        "line 5: clothes_type 'Dre\\udfffss' is not valid Unicode "
        "(character 4 is a lone surrogate)",
    ]
    skipped = cli_run("submit", manifest, "--db", tmp_path / "q.db", "--skip-invalid")
    assert skipped.exit_code == 0, skipped.output
    assert "1 queued" in skipped.stdout


def test_lone_surrogate_in_a_real_process_prints_one_clean_message(tmp_path: Path) -> None:
    manifest = jsonl(
        tmp_path / "m.jsonl",
        {"id": "\udc80x", "model_url": M, "clothes_url": C, "clothes_type": "Dress"},
    )
    outputs = []
    for args in (
        ["validate", "--no-images", manifest],
        ["submit", manifest, "--db", tmp_path / "q.db"],
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "runner", *map(str, args)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 1, proc.stderr
        assert "Traceback" not in proc.stderr and "--db" not in proc.stderr
        outputs.append(problems(proc.stderr))
    assert (
        outputs[0]
        == outputs[1]
        == ["line 1: id '\\udc80x' is not valid Unicode (character 1 is a lone surrogate)"]
    )


def test_a_batch_name_that_is_not_unicode_is_a_usage_error(tmp_path: Path) -> None:
    manifest = jsonl(
        tmp_path / "m.jsonl", {"model_url": M, "clothes_url": C, "clothes_type": "Dress"}
    )
    # A command-line argument that is not UTF-8 reaches Python as a lone surrogate.
    result = cli_run("submit", manifest, "--db", tmp_path / "q.db", "--batch", "spring\udcff")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: batch name: 'spring\\udcff' is not valid Unicode")


@pytest.mark.parametrize("first, second", [("NFC", "NFD"), ("NFD", "NFC")])
def test_one_id_in_two_unicode_spellings_is_a_duplicate(
    tmp_path: Path, first: str, second: str
) -> None:
    cafe_1 = unicodedata.normalize(first, "Café-1")  # type: ignore[arg-type]
    cafe_2 = unicodedata.normalize(second, "café-1")  # type: ignore[arg-type]
    assert cafe_1.casefold() != cafe_2.casefold()  # different code points
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        f"id,model_url,clothes_url,clothes_type\n{cafe_1},{M},{C},Dress\n"
        f"{cafe_2},https://x/m2.jpg,{C},Dress\n",
        encoding="utf-8",
    )
    db = tmp_path / "q.db"
    shown = unicodedata.normalize("NFC", "Café-1")
    assert both(manifest, db) == [
        f"line 3: id {unicodedata.normalize('NFC', 'café-1')!r} is already used on line 2 "
        f"(as {shown!r})"
    ]
    # Queued, the id is stored in NFC whatever the manifest's spelling.
    assert cli_run("submit", manifest, "--db", db, "--skip-invalid").exit_code == 0
    exported = cli_run("export", "--db", db, "--format", "jsonl")
    rows = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [r["id"] for r in rows if r["state"] != "invalid"] == [shown]
    # The skipped duplicate is recorded with its reason (its id as the manifest spelt it).
    assert [r["state"] for r in rows] == ["queued", "invalid"]


def wide_header(path: Path, columns: list[str]) -> Path:
    path.write_text(",".join(columns) + f"\n{M},{C},Dress\n", encoding="utf-8")
    return path


def test_100000_unknown_columns_give_a_short_message(tmp_path: Path) -> None:
    manifest = wide_header(tmp_path / "m.csv", [f"extra{i}" for i in range(100_000)])
    found = both(manifest, tmp_path / "q.db")
    assert found[0].startswith(
        "line 1: unknown columns 'extra0', 'extra1', 'extra2', 'extra3', 'extra4' "
        "and 99995 more; known columns are id, model_url"
    )
    assert found[1] == "line 1: missing required columns model_url, clothes_url, clothes_type"
    assert len(found) == 2


def test_100000_repeated_or_unnamed_columns_give_a_short_message(tmp_path: Path) -> None:
    columns = ["model_url", "clothes_url", "clothes_type"] + ["ModelUrl", ""] * 50_000
    found = both(wide_header(tmp_path / "m.csv", columns), tmp_path / "q.db")
    assert found == [
        "line 1: columns 5, 7, 9, 11, 13 and 49995 more have no name",
        "line 1: 50000 columns repeat an earlier one: 'ModelUrl' (model_url), "
        "'ModelUrl' (model_url), 'ModelUrl' (model_url), 'ModelUrl' (model_url), "
        "'ModelUrl' (model_url) and 49995 more",
    ]


def test_a_jsonl_row_with_100000_unknown_keys_gives_a_short_message(tmp_path: Path) -> None:
    row: dict[str, object] = {"model_url": M, "clothes_url": C, "clothes_type": "Dress"}
    row.update({f"k{i}": i for i in range(100_000)})
    found = both(jsonl(tmp_path / "m.jsonl", row), tmp_path / "q.db")
    assert found == ["line 1: unknown fields 'k0', 'k1', 'k2', 'k3', 'k4' and 99995 more"]


def test_a_huge_column_name_is_shown_cut(tmp_path: Path) -> None:
    manifest = wide_header(tmp_path / "m.csv", ["model_url", "clothes_url", "x" * 1_000_000])
    found = both(manifest, tmp_path / "q.db")
    assert found[0].startswith("line 1: unknown column 'xxxx")
    assert "...'" in found[0]


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--format", "csv", "--base-url", "ftp://x"],
            "--base-url 'ftp://x' is not an http(s) URL",
        ),
        (["--batch", "a/b"], "batch name: 'a/b' contains /, not allowed in a file name"),
    ],
)
def test_manifest_option_errors_are_not_blamed_on_the_database(
    tmp_path: Path, args: list[str], message: str
) -> None:
    manifest = wide_header(tmp_path / "m.csv", ["model_url", "clothes_url", "clothes_type"])
    result = cli_run("submit", manifest, "--db", tmp_path / "q.db", *args)
    assert result.exit_code == 2
    assert result.stderr == f"Error: {message}\n"


def test_an_unknown_extension_is_not_blamed_on_the_database(tmp_path: Path) -> None:
    manifest = tmp_path / "m.xyz"
    manifest.write_text(f"model_url,clothes_url,clothes_type\n{M},{C},Dress\n")
    result = cli_run("submit", manifest, "--db", tmp_path / "q.db")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: cannot tell the format of 'm.xyz'")


# JSON text as written in a file: `\\ud800` is the six characters a hostile file would hold.
_IDS = ['"a"', '"A"', '"\\ud800"', '"caf\\u00e9"', '"cafe\\u0301"', '"x\\udc80y"', "7", "null"]
_URLS = ['"https://x/m.jpg"', '"https://x/\\udfff.jpg"', '"m.jpg"', '"https://x/\\u00e9.jpg"']
_row = st.builds(
    lambda ident, url, extra: (
        "{"
        + (f'"id": {ident}, ' if ident else "")
        + (f'"model_url": {url}, ' if url else "")
        + '"clothes_url": "https://x/c.jpg", "clothes_type": "Dress"'
        + extra
        + "}"
    ),
    st.sampled_from(["", *_IDS]),
    st.sampled_from(["", *_URLS]),
    st.sampled_from(["", ', "x": 1', ', "ModelUrl": "https://x/m.jpg"', ', "\\ud800": 1']),
)
_line = st.one_of(_row, st.sampled_from(["", "{", "[1]", '"\\ud800"']))
_examples = itertools.count()


@settings(max_examples=25, deadline=None)
@given(st.lists(_line, max_size=6))
def test_validate_and_submit_agree_on_any_jsonl(lines: list[str]) -> None:
    folder = Path(tempfile.mkdtemp(prefix="agree-"))
    try:
        manifest = folder / f"m{next(_examples)}.jsonl"
        manifest.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        checked = cli_run("validate", "--no-images", manifest)
        submitted = cli_run("submit", manifest, "--db", folder / "q.db")
        assert checked.exit_code == submitted.exit_code, (checked.output, submitted.output)
        assert checked.exit_code in (0, 1)
        assert problems(checked.stderr) == problems(submitted.stderr)
    finally:
        shutil.rmtree(folder)

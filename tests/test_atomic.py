"""The one atomic writer: a target is replaced whole or not at all, never left half-written."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from runner.atomic import TEMP_SUFFIX, atomic_text_file


def test_target_replaced_only_when_the_block_ends(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old\n")
    with atomic_text_file(target) as fh:
        fh.write("new\n")
        assert target.read_text() == "old\n"  # a reader still sees the old file
    assert target.read_text() == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_an_error_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_text_file(target) as fh:
        fh.write("half")
        raise RuntimeError("disk trouble")
    assert target.read_text() == "old"
    assert not list(tmp_path.glob(f"*{TEMP_SUFFIX}"))


def test_permissions_are_those_of_any_new_file(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        with atomic_text_file(tmp_path / "x.txt") as fh:
            fh.write("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "x.txt").stat().st_mode) == 0o640


def test_newline_is_passed_through(tmp_path: Path) -> None:
    with atomic_text_file(tmp_path / "x.csv", newline="") as fh:
        fh.write("a\r\n")
    assert (tmp_path / "x.csv").read_bytes() == b"a\r\n"

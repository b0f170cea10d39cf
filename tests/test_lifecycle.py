"""The job's life is one table: every state documented, every event kind named once."""

from __future__ import annotations

import re
from pathlib import Path

from runner.store.lifecycle import TRANSITIONS, WORK_STATES, EventKind, JobState

ROOT = Path(__file__).resolve().parents[1]


def test_readme_states_table_lists_every_state() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### A job's life", 1)[1]
    documented = re.findall(r"^\| `([a-z]+)` \|", section, flags=re.MULTILINE)
    assert documented == [s.value for s in JobState]


def test_every_state_can_be_reached_and_unfinished_ones_can_be_left() -> None:
    targets = {t.target for t in TRANSITIONS.values()}
    sources = set().union(*(t.sources for t in TRANSITIONS.values()))
    # `queued` and `linked` are where submit puts jobs; every other state is reached.
    assert set(JobState) - {JobState.QUEUED, JobState.LINKED} <= targets
    assert sources >= WORK_STATES, "a job that is not finished must be able to move on"
    assert all(t.followers is None or t.followers in TRANSITIONS for t in TRANSITIONS.values())


def test_no_event_kind_or_state_is_spelled_out_elsewhere() -> None:
    """Event kinds and states are used through the enums, never as bare strings in code."""
    kinds = "|".join(re.escape(k.value) for k in EventKind)
    pattern = re.compile(
        rf"""(?:kind|state)\s*(?:==|=|!=)\s*["'](?:{kinds}|{"|".join(JobState)})["']"""
    )
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in (ROOT / "runner").rglob("*.py")
        if path.name != "lifecycle.py" and "fake" not in path.parts
        for n, line in enumerate(path.read_text().splitlines(), start=1)
        if pattern.search(line.split("#", 1)[0])
    ]
    assert offenders == []

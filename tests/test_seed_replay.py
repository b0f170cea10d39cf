"""The run's random seed is printed, and setting it replays the same draws, with or without
workers."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.seeding import SEED_ENV

REPO = Path(__file__).resolve().parent.parent

# A conftest that is ours, and a test whose failure shows the numbers it drew.
CONFTEST = "from tests.conftest import *  # noqa: F403\n"
DRAWS = """
def test_draws(rng):
    assert rng.random() < 0, "drew"
"""


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.delenv(SEED_ENV, raising=False)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_draws=DRAWS)
    return pytester


def test_set_seed_is_printed_and_replays_the_draws(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SEED_ENV, "12345")
    result = project.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            f"random seed: {SEED_ENV}=12345 *",
            f"*{random.Random(12345).random()}*",
            f"replay with {SEED_ENV}=12345",
        ]
    )


def test_unset_seed_is_drawn_and_printed(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess("-p", "no:cacheprovider")
    header = [line for line in result.outlines if line.startswith("random seed:")]
    assert len(header) == 1, result.outlines
    seed = int(header[0].split("=")[1].split()[0])
    result.stdout.fnmatch_lines([f"*{random.Random(seed).random()}*"])


def test_workers_share_the_printed_seed(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SEED_ENV, "777")
    project.makepyfile(test_more=DRAWS)
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(failed=2)
    assert result.outlines.count(f"replay with {SEED_ENV}=777") == 2
    result.stdout.fnmatch_lines([f"*{random.Random(777).random()}*"] * 2)


def test_a_seed_that_is_not_a_number_is_refused_in_one_sentence(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SEED_ENV, "abc")
    result = project.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {SEED_ENV} must be a whole number, not 'abc'"])
    assert "Traceback" not in result.stderr.str()

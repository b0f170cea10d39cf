"""The one random seed of a test run, so a failure can be replayed.

CHANGECLOTHES_TEST_SEED sets it; unset, each run draws a fresh one. The pytest header and
every failure print it. Tests and helpers that want randomness take it from here (the `seed`
and `rng` fixtures, or `run_seed()` in helpers). A literal seed stays only where a test
asserts on the known draws of that seed (e.g. "the seed gives both outcomes"): it is in the
source, so it replays as it is. Hypothesis prints its own seed.
"""

from __future__ import annotations

import os
import random

SEED_ENV = "CHANGECLOTHES_TEST_SEED"

_seed: int | None = None


def choose_seed() -> int:
    """The seed named by CHANGECLOTHES_TEST_SEED, or a fresh one."""
    value = os.environ.get(SEED_ENV, "").strip()
    if not value:
        return random.SystemRandom().randrange(2**32)
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{SEED_ENV} must be a whole number, not {value!r}") from None


def set_run_seed(seed: int) -> None:
    global _seed
    _seed = seed


def run_seed() -> int:
    """This run's seed (set once by conftest.py before any test runs)."""
    if _seed is None:
        raise RuntimeError("the test seed is set by tests/conftest.py at start-up")
    return _seed


def replay_hint() -> str:
    return f"{SEED_ENV}={run_seed()}"

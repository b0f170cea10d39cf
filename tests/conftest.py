"""Shared fixtures and the run's random seed. Tests talk only to servers they start on
127.0.0.1."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Generator
from typing import Any

import aiohttp
import pytest

from tests.seeding import choose_seed, replay_hint, run_seed, set_run_seed

# Store and manifest fixtures (fresh SQLite/PostgreSQL queue databases): tests/store_fixtures.py;
# a real S3-compatible server (moto, its own process): tests/s3_support.py
pytest_plugins = ["tests.store_fixtures", "tests.s3_support", "pytester"]


def pytest_configure(config: pytest.Config) -> None:
    # An xdist worker takes the controller's seed, so one number replays the whole run.
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is not None and "test_seed" in workerinput:
        set_run_seed(int(workerinput["test_seed"]))
        return
    try:
        set_run_seed(choose_seed())
    except ValueError as e:
        raise pytest.UsageError(str(e)) from None


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist: hand this run's seed to each worker."""
    node.workerinput["test_seed"] = run_seed()


def pytest_report_header(config: pytest.Config) -> str:
    return f"random seed: {replay_hint()} (set it to replay this run)"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        report.sections.append(("random seed", f"replay with {replay_hint()}"))
    return report


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def seed() -> int:
    """This run's random seed (printed in the header and with each failure)."""
    return run_seed()


@pytest.fixture
def rng(seed: int) -> random.Random:
    """A random source that replays with the run's seed."""
    return random.Random(seed)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client session for talking to the fake server."""
    async with aiohttp.ClientSession() as session:
        yield session

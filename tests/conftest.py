"""Shared fixtures. Tests talk only to servers they start on 127.0.0.1."""

from __future__ import annotations

import pytest

# Store and manifest fixtures (fresh SQLite/PostgreSQL queue databases): tests/store_fixtures.py
pytest_plugins = ["tests.store_fixtures"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"

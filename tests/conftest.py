"""Shared fixtures. Tests talk only to servers they start on 127.0.0.1."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"

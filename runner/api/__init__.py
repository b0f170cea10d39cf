"""The API boundary: signing, HTTP and the error table. Knows nothing of the database.

The client (and with it aiohttp) is imported on first use, so that modules needing only the
request model or the error table, such as the store, stay free of HTTP.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runner.api.errors import (
    ApiError,
    BadRowError,
    ClockSkewError,
    ErrorClass,
    HaltError,
    OutageError,
    ServiceActivatingError,
    ThrottledError,
    TransientError,
    classify,
    rule_for,
)
from runner.api.request import (
    ChangeClothesRequest,
    ChangeClothesResult,
    LogoParam,
    LogoRect,
)

if TYPE_CHECKING:
    from runner.api.client import ChangeClothesClient, Timeouts, http_session, parse_reply

_CLIENT_NAMES = {"ChangeClothesClient", "Timeouts", "http_session", "parse_reply"}


def __getattr__(name: str) -> Any:
    if name in _CLIENT_NAMES:
        from runner.api import client

        return getattr(client, name)
    raise AttributeError(f"module 'runner.api' has no attribute {name!r}")


__all__ = [
    "ApiError",
    "BadRowError",
    "ChangeClothesClient",
    "ChangeClothesRequest",
    "ChangeClothesResult",
    "ClockSkewError",
    "ErrorClass",
    "HaltError",
    "LogoParam",
    "LogoRect",
    "OutageError",
    "ServiceActivatingError",
    "ThrottledError",
    "Timeouts",
    "TransientError",
    "classify",
    "http_session",
    "parse_reply",
    "rule_for",
]

"""The API boundary: signing, HTTP and the error table. Knows nothing of the database."""

from runner.api.client import ChangeClothesClient, Timeouts, http_session, parse_reply
from runner.api.errors import (
    ApiError,
    BadRowError,
    ClockSkewError,
    ErrorClass,
    HaltError,
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
    "ServiceActivatingError",
    "ThrottledError",
    "Timeouts",
    "TransientError",
    "classify",
    "http_session",
    "parse_reply",
    "rule_for",
]

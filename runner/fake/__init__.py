"""A local server that behaves like Tencent Cloud's ChangeClothes, as the vendor documents it.

It checks TC3 signatures, parameters and image limits, holds the account's concurrency and
rate limits, draws a real result picture, and serves `RspImgType=url` results for a TTL.
Tests, benchmarks and `make demo` all run against it:

    async with serve_fake(FakeConfig(concurrency=2, ttl=5)) as server:
        ...  # server.url, server.credentials, server.stats()
"""

from runner.fake.config import (
    ACCOUNT_STATES,
    DEMO_SECRET_ID,
    DEMO_SECRET_KEY,
    FAULT_CODES,
    LATENCY_DISTS,
    FakeConfig,
    FakeCredentials,
    parse_fault,
)
from runner.fake.server import FakeServer, run_until_stopped, serve_fake

__all__ = [
    "ACCOUNT_STATES",
    "DEMO_SECRET_ID",
    "DEMO_SECRET_KEY",
    "FAULT_CODES",
    "LATENCY_DISTS",
    "FakeConfig",
    "FakeCredentials",
    "FakeServer",
    "parse_fault",
    "run_until_stopped",
    "serve_fake",
]

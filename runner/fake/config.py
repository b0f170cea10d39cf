"""Every knob of the fake server, in one frozen value, and the credentials it accepts."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from runner.api.errors import ERROR_TABLE
from runner.credentials import ENV_SECRET_ID, ENV_SECRET_KEY, ENV_SESSION_TOKEN
from runner.samples import SAMPLE_IMAGES

# Public by design: `make demo` and the README use them. Never valid at Tencent.
DEMO_SECRET_ID = "AKIDchangeclothesFAKEdemo00000000"
DEMO_SECRET_KEY = "changeclothes-fake-demo-key-0000"

LATENCY_DISTS = ("fixed", "uniform", "lognormal")

# --account-state value -> the halting code every API call then gets.
ACCOUNT_STATES: dict[str, str | None] = {
    "ok": None,
    "arrears": "ResourceUnavailable.InArrears",
    "low-balance": "ResourceUnavailable.LowBalance",
    "stopped": "ResourceUnavailable.StopUsing",
}

# Codes a fault may inject: every code of the error table the service itself can answer
# (the `ClientError.*` codes are made up by our client and never come from a server).
FAULT_CODES: frozenset[str] = frozenset(
    rule.code for rule in ERROR_TABLE if not rule.code.startswith("ClientError.")
)

DEFAULT_IMAGES_DIR = SAMPLE_IMAGES


@dataclass(frozen=True)
class FakeCredentials:
    """The one key pair (and optional token) the fake server accepts."""

    secret_id: str
    secret_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)
    source: str = "given"

    @property
    def is_demo(self) -> bool:
        return self.secret_id == DEMO_SECRET_ID and self.secret_key == DEMO_SECRET_KEY

    @classmethod
    def demo(cls) -> FakeCredentials:
        return cls(DEMO_SECRET_ID, DEMO_SECRET_KEY, source="demo")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> FakeCredentials:
        """`TENCENTCLOUD_SECRET_ID` / `_KEY` (and `_SESSION_TOKEN`) when both are set, else
        the demo pair, as the runner itself would find them."""
        env = os.environ if env is None else env
        secret_id = env.get(ENV_SECRET_ID, "").strip()
        secret_key = env.get(ENV_SECRET_KEY, "").strip()
        if secret_id and secret_key:
            token = env.get(ENV_SESSION_TOKEN, "").strip() or None
            return cls(secret_id, secret_key, token, source="environment")
        return cls.demo()

    def describe(self) -> str:
        """One line for a console: never the key, except the public demo key."""
        if self.is_demo:
            return (
                "demo credentials (public, valid only here): "
                f"{ENV_SECRET_ID}={DEMO_SECRET_ID} {ENV_SECRET_KEY}={DEMO_SECRET_KEY}"
            )
        masked = self.secret_id[:4] + "…" + self.secret_id[-4:] if len(self.secret_id) > 8 else "…"
        token = f" and {ENV_SESSION_TOKEN}" if self.token else ""
        return f"credentials from {self.source} ({ENV_SECRET_ID}={masked}, its key{token})"


def parse_fault(text: str) -> tuple[str, float]:
    """`CODE=RATE` -> (code, rate); ValueError with a readable reason otherwise."""
    code, sep, rate_text = text.partition("=")
    code = code.strip()
    if not sep or not code:
        raise ValueError(f"{text!r} is not CODE=RATE (e.g. FailedOperation.InnerError=0.05)")
    if code not in FAULT_CODES:
        raise ValueError(f"{code!r} is not an error code of the ChangeClothes API")
    try:
        rate = float(rate_text)
    except ValueError:
        raise ValueError(f"rate {rate_text!r} in {text!r} is not a number") from None
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate {rate} in {text!r} is not between 0 and 1")
    return code, rate


@dataclass(frozen=True)
class FakeConfig:
    """How the fake ChangeClothes service behaves. Defaults are the real service's.

    `latency` is the mean seconds one generation takes, drawn per task from
    `latency_dist`. `faults` maps an error code to the share of valid calls that get it.
    `reset_rate` is the share of answers (API and result downloads) cut off mid-body.
    `clock_offset` shifts the server's clock (its `Date` header and the signature time
    check) to exercise a client's clock correction. `images_dir` is what `/images/` serves
    (None: no such route). `credentials` None means `FakeCredentials.from_env()`.
    """

    concurrency: int = 1
    ttl: float = 3600.0
    latency: float = 0.0
    latency_dist: str = "fixed"
    seed: int | None = None
    rate_limit: float | None = None
    faults: Mapping[str, float] = field(default_factory=dict)
    reset_rate: float = 0.0
    download_delay: float = 0.0
    account_state: str = "ok"
    images_dir: Path | None = DEFAULT_IMAGES_DIR
    credentials: FakeCredentials | None = None
    clock_offset: float = 0.0

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.ttl <= 0:
            raise ValueError("ttl must be positive")
        if self.latency < 0 or self.download_delay < 0:
            raise ValueError("latency and download_delay cannot be negative")
        if self.latency_dist not in LATENCY_DISTS:
            raise ValueError(f"latency_dist must be one of {', '.join(LATENCY_DISTS)}")
        if self.rate_limit is not None and self.rate_limit <= 0:
            raise ValueError("rate_limit must be positive (or None for no limit)")
        if not 0.0 <= self.reset_rate <= 1.0:
            raise ValueError("reset_rate must be between 0 and 1")
        if self.account_state not in ACCOUNT_STATES:
            raise ValueError(f"account_state must be one of {', '.join(ACCOUNT_STATES)}")
        for code, rate in self.faults.items():
            if code not in FAULT_CODES:
                raise ValueError(f"{code!r} is not an error code of the ChangeClothes API")
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"fault rate {rate} for {code} is not between 0 and 1")
        if sum(self.faults.values()) > 1.0 + 1e-9:
            raise ValueError("fault rates add up to more than 1")
        # A private copy, so a caller's dict changing later cannot change a frozen config.
        object.__setattr__(self, "faults", dict(self.faults))
        if self.images_dir is not None:
            object.__setattr__(self, "images_dir", Path(self.images_dir))

    def resolved_credentials(self) -> FakeCredentials:
        return self.credentials if self.credentials is not None else FakeCredentials.from_env()

"""The seeded randomness of the fake: latency, injected faults, cut connections, and the
request-rate limit. Each draws from its own stream, so turning one knob does not change the
sequence another produces for the same seed."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping

LOGNORMAL_SIGMA = 0.5


def _stream(seed: int | None, salt: int) -> random.Random:
    return random.Random(None if seed is None else seed * 1000 + salt)


class LatencySampler:
    """Seconds one generation takes; `mean` on average whatever the distribution."""

    def __init__(self, mean: float, dist: str, seed: int | None) -> None:
        self.mean = mean
        self.dist = dist
        self._rng = _stream(seed, 1)

    def sample(self) -> float:
        if self.mean <= 0:
            return 0.0
        if self.dist == "uniform":
            return self._rng.uniform(0.0, 2 * self.mean)
        if self.dist == "lognormal":
            mu = math.log(self.mean) - LOGNORMAL_SIGMA**2 / 2
            return self._rng.lognormvariate(mu, LOGNORMAL_SIGMA)
        return self.mean


class FaultPicker:
    """One draw per call: which injected code (if any) the call gets."""

    def __init__(self, faults: Mapping[str, float], seed: int | None) -> None:
        self._faults = sorted(faults.items())
        self._rng = _stream(seed, 2)

    def pick(self) -> str | None:
        if not self._faults:
            return None
        draw = self._rng.random()
        for code, rate in self._faults:
            if draw < rate:
                return code
            draw -= rate
        return None


class Coin:
    """True with probability `rate`, from its own seeded stream."""

    def __init__(self, rate: float, seed: int | None, salt: int) -> None:
        self.rate = rate
        self._rng = _stream(seed, salt)

    def flip(self) -> bool:
        return self.rate > 0 and self._rng.random() < self.rate


class RateLimiter:
    """A token bucket: `per_second` calls a second on average, bursts up to one second's worth."""

    def __init__(
        self, per_second: float | None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_second = per_second
        self._clock = clock
        self._capacity = max(1.0, per_second or 0.0)
        self._tokens = self._capacity
        self._last = clock()

    def allow(self) -> bool:
        if self.per_second is None:
            return True
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._last) * self.per_second)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

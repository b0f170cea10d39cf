"""What the fake saw, for `GET /_admin/stats`: tests and benchmarks check behaviour with it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any

OK = "OK"


@dataclass
class Stats:
    calls: Counter[str] = field(default_factory=Counter)  # API calls by answer code, "OK"
    in_flight: int = 0  # tasks holding a slot now
    max_in_flight: int = 0  # most tasks that ever held a slot at once
    limit_violations: int = 0  # calls that came while `concurrency` tasks were in flight
    rate_limited: int = 0  # calls refused by the request-rate limit
    results: list[dict[str, Any]] = field(default_factory=list)  # every result delivered
    downloads: list[dict[str, Any]] = field(default_factory=list)  # result files served
    bytes_served: int = 0  # result image bytes delivered, by URL or inline
    expired_downloads: int = 0  # result URLs asked for after their TTL (answered 403)
    resets: Counter[str] = field(default_factory=Counter)  # answers cut off: api / download

    def take_slot(self) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def release_slot(self) -> None:
        self.in_flight -= 1

    def clear(self) -> None:
        """Forget history; tasks still in flight stay counted."""
        fresh = Stats(in_flight=self.in_flight, max_in_flight=self.in_flight)
        for f in fields(self):
            setattr(self, f.name, getattr(fresh, f.name))

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": dict(self.calls),
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "limit_violations": self.limit_violations,
            "rate_limited": self.rate_limited,
            "results": list(self.results),
            "downloads": list(self.downloads),
            "bytes_served": self.bytes_served,
            "expired_downloads": self.expired_downloads,
            "resets": {"api": self.resets["api"], "download": self.resets["download"]},
        }

"""How `status` and `account show` print the runners (no database library needed)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from runner.store.views import RunnerInfo


def runners_json(runners: list[RunnerInfo]) -> list[dict[str, Any]]:
    return [
        {
            "id": r.id,
            "host": r.host,
            "pid": r.pid,
            "since": r.started.isoformat(),
            "heartbeat": r.heartbeat.isoformat(),
            "alive": not r.stale,
            "jobs_in_flight": r.in_flight,
            "leases": r.leases,
        }
        for r in runners
    ]


def runner_lines(runners: list[RunnerInfo]) -> list[str]:
    """Live runners, then stale ones (whose jobs the next runner to look takes back)."""
    if not runners:
        return ["Runners: none running."]
    lines = []
    for stale, title in ((False, "Runners"), (True, "Stale runners (taken over at the next beat)")):
        chosen = [r for r in runners if r.stale is stale]
        if chosen:
            lines.append(f"{title}:")
            lines.extend(
                f"  {r.host} pid {r.pid}  since {_ago(r.started)}  heartbeat {_ago(r.heartbeat)}"
                f"  jobs in flight {r.in_flight}  leases {r.leases}"
                for r in chosen
            )
    return lines


def _ago(moment: datetime) -> str:
    seconds = max(0, int((datetime.now(UTC) - moment).total_seconds()))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min ago"
    return f"{minutes} min {secs} s ago" if minutes else f"{secs} s ago"

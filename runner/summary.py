"""What a run did, said twice: lines for a person, and one JSON document for machines (the
`--json` output, the `--notify` POST, the `--on-finish` command's input and the
`run-<time>.json` file beside the results). Both keep "this run" apart from "the queue now"."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from runner.clock import utcnow
from runner.scheduler.run import RunResult
from runner.store import WORK_STATES, JobState


def summary_json(result: RunResult, started_at: datetime) -> dict[str, Any]:
    stats = result.stats
    halt = result.halt
    return {
        "exit_code": result.exit_code,
        "stopped_because": result.reason.value,
        "started_at": started_at.isoformat(),
        "finished_at": utcnow().isoformat(),
        "wall_time_s": round(stats.wall_time, 3),
        "this_run": {
            "done": stats.done,
            "failed": stats.failed,
            "failed_by_code": dict(stats.failed_by_code.most_common()),
            "paid_calls": stats.paid_calls,
            "api_answers": stats.answers,
            "throttled": stats.throttled,
            "regenerations": stats.regenerations,
            "errors_by_code": dict(stats.errors_by_code.most_common()),
            "recovered": dict(stats.recovered),
        },
        "queue_now": {str(s): result.counts.get(s, 0) for s in JobState},
        "halted_by": None if halt is None else {"code": halt.code, "message": halt.message},
        "local_fault": result.fault,
    }


def format_summary(result: RunResult) -> list[str]:
    stats, counts = result.stats, result.counts
    failed = ", ".join(f"{c} ×{n}" for c, n in stats.failed_by_code.most_common())
    lines = [
        f"This run: {stats.done} done, {stats.failed} failed"
        + (f" ({failed})" if failed else "")
        + f"; {stats.paid_calls} paid calls, {stats.regenerations} results generated again "
        f"after they were lost, {stats.throttled} throttled answers; "
        f"wall time {time.strftime('%H:%M:%S', time.gmtime(stats.wall_time))}.",
    ]
    if counts:
        left = sum(counts.get(s, 0) for s in WORK_STATES if s is not JobState.GENERATED)
        cancelled = counts.get(JobState.CANCELLED, 0)
        lines.append(
            f"The queue now: {counts.get(JobState.DONE, 0)} done, "
            f"{counts.get(JobState.FAILED, 0)} failed, {left} left to run, "
            f"{counts.get(JobState.GENERATED, 0)} awaiting download"
            + (f", {cancelled} cancelled" if cancelled else "")
            + "."
        )
    recovered = stats.recovered.get("recovered", 0) + stats.recovered.get("expired", 0)
    if recovered:
        lines.insert(
            0,
            f"Resumed after an interruption: {stats.recovered.get('recovered', 0)} calls cut "
            f"short went back to the queue, {stats.recovered.get('expired', 0)} expired "
            "results to be generated again.",
        )
    if stats.errors_by_code:
        lines.append(
            "Errors seen: " + ", ".join(f"{c} ×{n}" for c, n in stats.errors_by_code.most_common())
        )
    return lines

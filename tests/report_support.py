"""A morning-after queue built the real way: a manifest submitted, then every job driven
through the store's own transitions as a run would, with real result files on disk."""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from PIL import Image

from runner.store import Event, EventKind, Job, Store, open_store
from runner.store.submit import submit_manifest

BASE_URL = "http://127.0.0.1:9/"
BATCH = "spring"
# Allowed in a manifest id, and each one dangerous somewhere: in HTML (&, '), in a URL
# (#, %, space) or in a CSV cell (,).
ODD_ID = "it's #1 & 50%, ok"
XSS = "<script>alert('x')</script>"

DECODE = "FailedOperation.ImageDecodeFailed"
RPC = "FailedOperation.RpcFail"
THROTTLE = "RequestLimitExceeded.JobNumExceed"


@dataclass
class Morning:
    db: str
    out: Path
    batch: str = BATCH
    done: dict[str, Path] = field(default_factory=dict)  # id -> result file
    failed: dict[str, str] = field(default_factory=dict)  # id -> code
    unfinished: dict[str, str] = field(default_factory=dict)  # id -> state
    paid_calls: int = 0
    throttled: int = 0
    failed_calls: dict[str, int] = field(default_factory=dict)
    expired: int = 0
    api_ms: int = 0


def write_manifest(path: Path, ids: list[str]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "model_url", "clothes_url", "clothes_type"])
        for n, ident in enumerate(ids):
            writer.writerow([ident, f"models/m{n}.jpg", f"clothes/c{n}.jpg", "Upper-body"])
    return path


def write_jpeg(path: Path, shade: int) -> tuple[str, int]:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (48, 64), (shade, 120, 200 - shade)).save(path, "JPEG")
    data = path.read_bytes()
    return hashlib.sha256(data).hexdigest(), len(data)


async def claim(store: Store, now: datetime, external_id: str) -> Job:
    job = await store.claim_next(now, "w1")
    assert job is not None and job.external_id == external_id, job
    return job


async def call(
    m: Morning, store: Store, job: Job, code: str, latency_ms: int, error_class: str | None
) -> None:
    await store.record_event(
        Event(
            EventKind.CALL,
            job_id=job.id,
            code=code,
            error_class=error_class,
            latency_ms=latency_ms,
            attempt=job.attempts + 1,
            request_id=f"req-{job.id}-{latency_ms}",
        )
    )
    m.api_ms += latency_ms
    if code == "OK":
        m.paid_calls += 1
    elif error_class == "throttle":
        m.throttled += 1
    if code != "OK":
        m.failed_calls[code] = m.failed_calls.get(code, 0) + 1


async def finish(m: Morning, store: Store, job: Job, now: datetime, shade: int) -> None:
    await call(m, store, job, "OK", 1500, None)
    await store.mark_generated(job.id, f"http://127.0.0.1:9/r/{job.id}", now, f"req-{job.id}")
    path = m.out / m.batch / f"{job.external_id}.jpg"
    sha, size = write_jpeg(path, shade)
    await store.record_event(
        Event(EventKind.DOWNLOAD, job_id=job.id, code="OK", size=size, latency_ms=40)
    )
    await store.mark_done(job.id, str(path), sha, size)
    m.done[job.external_id] = path


async def build_morning(
    tmp_path: Path, *, out: Path | None = None, db: str | None = None
) -> Morning:
    """Nine jobs: four done (one regenerated after its URL expired, one with ODD_ID), two
    failed (a bad row whose message carries a script tag, a transient one out of attempts),
    three unfinished (throttled, backing off, never called)."""
    ids = ["a-done", "b-regen", "c-done", ODD_ID, "e-decode", "f-rpc", "g-throttled", "h-later"]
    ids.append("i-fresh")
    m = Morning(
        db=db if db is not None else str(tmp_path / "q.db"),
        out=out if out is not None else tmp_path / "out",
    )
    store = await open_store(m.db)
    try:
        result = await submit_manifest(
            store, write_manifest(tmp_path / f"{BATCH}.csv", ids), base_url=BASE_URL
        )
        assert result.queued == len(ids), result
        now = datetime.now(UTC)

        for shade, ident in enumerate(["a-done", "b-regen", "c-done", ODD_ID]):
            job = await claim(store, now, ident)
            if ident == "b-regen":  # the URL expired before its download: generated again
                await call(m, store, job, "OK", 1400, None)
                await store.mark_generated(job.id, "http://127.0.0.1:9/r/x", now, "req-x")
                await store.expire_generated(job.id)
                m.expired += 1
                job = await claim(store, now, ident)
            await finish(m, store, job, now, 40 * shade)

        job = await claim(store, now, "e-decode")
        await call(m, store, job, DECODE, 300, "bad_row")
        await store.mark_failed(job.id, DECODE, f"Image decoding failed. {XSS}")
        m.failed["e-decode"] = DECODE

        job = await claim(store, now, "f-rpc")
        await call(m, store, job, RPC, 700, "transient")
        await store.requeue(
            job.id,
            not_before=now - timedelta(seconds=1),
            charge_attempt=True,
            code=RPC,
            message="x",
        )
        job = await claim(store, now, "f-rpc")
        await call(m, store, job, RPC, 800, "transient")
        await store.mark_failed(job.id, RPC, "RPC request failed.")
        m.failed["f-rpc"] = RPC

        job = await claim(store, now, "g-throttled")
        later = await claim(store, now, "h-later")  # before g is due again
        await call(m, store, job, THROTTLE, 100, "throttle")
        await store.requeue(
            job.id, not_before=None, charge_attempt=False, code=THROTTLE, message="Too many tasks"
        )
        m.unfinished["g-throttled"] = "queued"

        job = later
        await call(m, store, job, RPC, 900, "transient")
        await store.requeue(
            job.id,
            not_before=now + timedelta(hours=1),
            charge_attempt=True,
            code=RPC,
            message="RPC request failed.",
        )
        m.unfinished["h-later"] = "queued"
        m.unfinished["i-fresh"] = "queued"
    finally:
        await store.close()
    return m

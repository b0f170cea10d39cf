"""Result URLs that expire before they are fetched are generated again; files stay whole."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from PIL import Image

from runner.fake import serve_fake
from tests.run_support import all_jobs, run, submit, write_manifest

pytestmark = pytest.mark.anyio


async def test_expired_url_is_regenerated_and_files_match_what_was_served(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "queue.db")
    out = tmp_path / "out"
    async with serve_fake(concurrency=4, latency=0.1, ttl=2.0, download_delay=0.9, seed=5) as srv:
        await submit(db, write_manifest(tmp_path / "m.csv", 8), srv.url + "/")
        result = await run(db, srv, out, concurrency=4, download_workers=2)
        stats = srv.stats()
    assert result.exit_code == 0
    assert stats["expired_downloads"] > 0, "the test must really make URLs expire"
    assert result.stats.regenerations == stats["expired_downloads"]
    assert stats["calls"]["OK"] == 8 + result.stats.regenerations

    served = {d["sha256"] for d in stats["downloads"]}
    jobs = await all_jobs(db)
    assert [j["state"] for j in jobs] == ["done"] * 8
    for job in jobs:
        path = Path(job["output_path"])
        data = path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == job["sha256"] in served
        assert len(data) == job["bytes"]
        with Image.open(path) as image:
            image.load()
    names = sorted(p.name for p in (out / "m").iterdir())
    assert names == [f"job-{n:04d}.jpg" for n in range(8)], "no temporary or stray files"

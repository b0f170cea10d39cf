"""The baseline of B2: the same calls and downloads as the runner, with nothing else.

aiohttp, a semaphore of C, requests signed with `runner.api.signing`; for each row: call,
download the result URL, write the file (plainly: no temporary name, no fsync, no check that
it is an image), next. No database, no retries, no progress display.

Run by b2_overhead.py as its own process; prints one JSON line with what it did:

    python bench/loop_aiohttp.py --endpoint http://127.0.0.1:PORT --manifest m.csv \
        --base-url http://127.0.0.1:PORT/images/ --out DIR [--concurrency C]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path

import aiohttp
from common import read_manifest

from runner.api import signing


async def run(args: argparse.Namespace) -> dict[str, object]:
    rows = read_manifest(args.manifest, args.base_url)
    args.out.mkdir(parents=True, exist_ok=True)
    secret_id = os.environ["TENCENTCLOUD_SECRET_ID"]
    secret_key = os.environ["TENCENTCLOUD_SECRET_KEY"]
    host = args.endpoint.split("://", 1)[1].rstrip("/")
    gate = asyncio.Semaphore(args.concurrency)
    errors: list[str] = []

    async def one(session: aiohttp.ClientSession, row: dict[str, str]) -> None:
        body = json.dumps(
            {
                "ModelUrl": row["model_url"],
                "ClothesUrl": row["clothes_url"],
                "ClothesType": row["clothes_type"],
                "RspImgType": "url",
            }
        ).encode()
        timestamp = int(time.time())
        headers = {
            "Content-Type": signing.JSON_CONTENT_TYPE,
            "Host": host,
            "X-TC-Action": "ChangeClothes",
            "X-TC-Version": "2022-12-29",
            "X-TC-Timestamp": str(timestamp),
            "X-TC-Region": "ap-singapore",
            "Authorization": signing.authorization(
                secret_id, secret_key, host, body, timestamp, "aiart"
            ),
        }
        async with gate:
            async with session.post(args.endpoint + "/", data=body, headers=headers) as resp:
                answer = json.loads(await resp.read())["Response"]
            if "Error" in answer:
                errors.append(f"{row['id']}: {answer['Error']['Code']}")
                return
            async with session.get(answer["ResultImage"]) as resp:
                data = await resp.read()
            (args.out / f"{row['id']}.jpg").write_bytes(data)

    connector = aiohttp.TCPConnector(limit=args.concurrency + 8)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(one(session, row) for row in rows))
        seconds = time.perf_counter() - started
    written = sum(1 for _ in args.out.iterdir())
    return {
        "seconds": seconds,
        "written": written,
        "errors": errors[:20],
        "error_count": len(errors),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True, help="http://host:port of the API")
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()

"""Runs the real client or result download once, in a process of its own, and prints the
outcome as one JSON line, so a test can measure that process's peak memory.

    python -m tests.hostile_probe api ENDPOINT FOLDER --model-url URL [--rsp-img-type url]
    python -m tests.hostile_probe download URL FOLDER [--expires-in SECONDS]

A classified outcome exits 0; anything else escapes as a traceback (exit 1): the test's
failure.
"""

from __future__ import annotations

import argparse
import base64
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio

from runner.api.client import ChangeClothesClient, Timeouts, http_session
from runner.api.errors import ApiError
from runner.api.request import MAX_RESULT_BYTES, ChangeClothesRequest
from runner.clock import utcnow
from runner.credentials import Credentials
from runner.scheduler.downloads import DownloadError, DownloadLimits, fetch_result
from runner.scheduler.files import NotAnImage, write_bytes
from runner.scheduler.sinks import LocalFolderSink

CREDS = Credentials("AKIDhostile", "hostile-secret-key")


def _failure(exc: Exception) -> dict[str, Any]:
    return {
        "outcome": "error",
        "type": type(exc).__name__,
        "code": getattr(exc, "code", ""),
        "error_class": str(getattr(exc, "error_class", "")),
        "status": getattr(exc, "status", None) or getattr(exc, "http_status", None),
    }


async def _api(args: argparse.Namespace) -> dict[str, Any]:
    timeouts = Timeouts(connect=args.timeout, read=args.timeout, total=args.total)
    request = ChangeClothesRequest(
        args.model_url, "http://127.0.0.1/c.jpg", "Upper-body", rsp_img_type=args.rsp_img_type
    )
    async with http_session(timeouts) as session:
        client = ChangeClothesClient(
            session, CREDS, args.target, "ap-singapore", max_result_bytes=args.max_result_bytes
        )
        try:
            result = await client.change_clothes(request)
            if result.is_url:
                return {"outcome": "result", "url": result.result_image[:200]}
            # As the scheduler keeps a Base64 result: decoded, checked, written.
            data = base64.b64decode(result.result_image, validate=True)
            written = await write_bytes(args.folder, "result", data)
            return {"outcome": "result", "size": written.size}
        except (ApiError, NotAnImage) as exc:
            return _failure(exc)


async def _download(args: argparse.Namespace) -> dict[str, Any]:
    limits = DownloadLimits(
        max_bytes=args.max_result_bytes, connect=args.timeout, read=args.timeout, total=args.total
    )
    expires_at = utcnow() + timedelta(seconds=args.expires_in)
    async with http_session() as session:
        try:
            written = await fetch_result(
                session,
                args.target,
                LocalFolderSink(args.folder),
                "",
                "result",
                limits=limits,
                expires_at=expires_at,
            )
        except (DownloadError, NotAnImage) as exc:
            return _failure(exc)
    return {"outcome": "result", "size": written.size}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=("api", "download"))
    parser.add_argument("target", help="the API endpoint, or the URL to download")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--model-url", default="http://127.0.0.1/m.jpg")
    parser.add_argument("--rsp-img-type", default="url")
    parser.add_argument("--max-result-bytes", type=int, default=MAX_RESULT_BYTES)
    parser.add_argument("--timeout", type=float, default=4.0, help="connect and read")
    parser.add_argument("--total", type=float, default=8.0)
    parser.add_argument("--expires-in", type=float, default=3600.0)
    args = parser.parse_args()
    run = _api if args.what == "api" else _download
    print(json.dumps(anyio.run(run, args)), flush=True)


if __name__ == "__main__":
    main()

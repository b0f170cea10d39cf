"""Helpers for the results-in-a-bucket tests: the CLI's environment with both the fake API's
key and the S3 server's, and the checks every such test makes on the bucket."""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path
from typing import Any

from PIL import Image

from runner.fake import FakeServer
from tests.cli_run import run_env
from tests.s3_support import MotoServer


def bucket_env(home: Path, server: FakeServer, moto: MotoServer) -> dict[str, str]:
    """A clean CLI environment: the fake's Tencent pair, the test store's AWS keys and its
    endpoint (CHANGECLOTHES_S3_ENDPOINT)."""
    creds = server.credentials
    return moto.env(run_env(home, creds.secret_id, creds.secret_key))


def check_results(moto: MotoServer, bucket: str, jobs: list[dict[str, Any]]) -> dict[str, bytes]:
    """Every done job's object exists under its recorded reference, decodes, and carries the
    sha256 the database records (in its bytes and in its metadata). Returns key -> bytes."""
    client = moto.boto()
    found: dict[str, bytes] = {}
    for job in jobs:
        assert job["state"] == "done", job
        ref = job["output_path"]
        assert ref.startswith(f"s3://{bucket}/"), ref
        key = ref.removeprefix(f"s3://{bucket}/")
        reply = client.get_object(Bucket=bucket, Key=key)
        data = reply["Body"].read()
        assert hashlib.sha256(data).hexdigest() == job["sha256"], key
        assert reply["Metadata"]["sha256"] == job["sha256"], key
        assert reply["ContentType"] == "image/jpeg"
        assert len(data) == job["bytes"]
        with Image.open(io.BytesIO(data)) as image:
            image.load()
        found[key] = data
    return found


_SHEET = re.compile(r'<script type="application/json" class="sheet-data">(.*?)</script>', re.S)


def sheet_rows(html: str) -> list[tuple[list[dict[str, Any]], list[str]]]:
    """The review sheets of a report: (rows, images) per batch."""
    sheets = [json.loads(m) for m in _SHEET.findall(html)]
    return [(s["rows"], s["images"]) for s in sheets]


def signed_urls(text: str) -> list[str]:
    """Every SigV4-presigned URL in `text`."""
    return re.findall(r"https?://[^\s\"'<>]*X-Amz-Signature=[0-9a-f]+", text)

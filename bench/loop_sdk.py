"""The baseline of B1: a loop written the way a user would with Tencent's official SDK.

For each row: call ChangeClothes with `AiartClient`, download the result URL, write the file,
next. With `--threads C` > 1 the same function runs in a thread pool of C (one client per
thread). No retries, no database: an error is counted and the loop moves on.

Run by b1_slots.py as its own process; prints one JSON line with what it did:

    python bench/loop_sdk.py --endpoint 127.0.0.1:PORT --manifest m.csv \
        --base-url http://127.0.0.1:PORT/images/ --out DIR [--threads C]
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from common import read_manifest
from tencentcloud.aiart.v20221229 import aiart_client, models
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True, help="host:port of the API")
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    rows = read_manifest(args.manifest, args.base_url)
    args.out.mkdir(parents=True, exist_ok=True)
    cred = credential.Credential(
        os.environ["TENCENTCLOUD_SECRET_ID"], os.environ["TENCENTCLOUD_SECRET_KEY"]
    )
    local = threading.local()
    errors: list[str] = []

    def client() -> aiart_client.AiartClient:
        if not hasattr(local, "client"):
            http = HttpProfile(endpoint=args.endpoint, protocol="http")
            local.client = aiart_client.AiartClient(
                cred, "ap-singapore", ClientProfile(httpProfile=http)
            )
        return local.client

    def one(row: dict[str, str]) -> None:
        request = models.ChangeClothesRequest()
        request.ModelUrl = row["model_url"]
        request.ClothesUrl = row["clothes_url"]
        request.ClothesType = row["clothes_type"]
        request.RspImgType = "url"
        try:
            response = client().ChangeClothes(request)
            image = requests.get(response.ResultImage, timeout=60)
            image.raise_for_status()
        except (TencentCloudSDKException, requests.RequestException) as exc:
            errors.append(f"{row['id']}: {exc}")
            return
        (args.out / f"{row['id']}.jpg").write_bytes(image.content)

    started = time.perf_counter()
    if args.threads <= 1:
        for row in rows:
            one(row)
    else:
        with ThreadPoolExecutor(max_workers=args.threads) as pool:
            list(pool.map(one, rows))
    seconds = time.perf_counter() - started
    written = sum(1 for _ in args.out.iterdir())
    print(
        json.dumps(
            {
                "seconds": seconds,
                "written": written,
                "errors": errors[:20],
                "error_count": len(errors),
            }
        )
    )


if __name__ == "__main__":
    main()

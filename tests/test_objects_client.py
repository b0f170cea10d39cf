"""The object-store client against a real S3-compatible server (moto on 127.0.0.1)."""

from __future__ import annotations

import hashlib

import aiohttp
import pytest

from runner.objects import BucketLocation, ObjectRef, ObjectStoreConfig, ObjectStoreError
from runner.objects.client import open_object_store
from runner.objects.errors import ObjectTooLarge
from tests.s3_support import MotoServer

pytestmark = pytest.mark.anyio


async def test_put_head_get_and_presigned_get(
    moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in moto_server.env({}).items():
        monkeypatch.setenv(key, value)
    moto_server.make_bucket("photos")
    ref = BucketLocation.parse("s3://photos/in/").ref("a.jpg")
    data = b"\xff\xd8not-really-a-jpeg" * 100
    digest = hashlib.sha256(data).hexdigest()
    async with open_object_store(moto_server.config) as store:
        assert await store.head(ref) is None
        await store.put_bytes(ref, data, content_type="image/jpeg", metadata={"sha256": digest})
        info = await store.head(ref)
        assert info is not None
        assert (info.size, info.content_type, info.metadata["sha256"]) == (
            len(data),
            "image/jpeg",
            digest,
        )
        assert await store.get_bytes(ref, max_bytes=len(data)) == data
        with pytest.raises(ObjectTooLarge):
            await store.get_bytes(ref, max_bytes=len(data) - 1)
        url = await store.presign_get(ref, 60)
    assert "X-Amz-Expires=60" in url and url.startswith(moto_server.endpoint)
    async with aiohttp.ClientSession() as http, http.get(url) as reply:
        assert reply.status == 200
        assert await reply.read() == data


async def test_missing_bucket_is_one_sentence(
    moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in moto_server.env({}).items():
        monkeypatch.setenv(key, value)
    async with open_object_store(moto_server.config) as store:
        with pytest.raises(ObjectStoreError, match="NoSuchBucket: the bucket does not exist"):
            await store.put_bytes(ObjectRef("nowhere", "x.jpg"), b"x")


def test_locations_parse_and_refuse() -> None:
    loc = BucketLocation.parse("s3://catalog-1250000000/studio//fall/")
    assert (loc.bucket, loc.prefix) == ("catalog-1250000000", "studio/fall")
    assert str(loc.ref("ab.jpg")) == "s3://catalog-1250000000/studio/fall/ab.jpg"
    for bad in ("s3://A_B/x", "http://b/x", "s3://bucket/../x", "s3://bucket/x?y=1"):
        with pytest.raises(ValueError):
            BucketLocation.parse(bad)


def test_cos_endpoint_uses_virtual_hosts_its_region_and_the_tencent_pair() -> None:
    cos = ObjectStoreConfig(endpoint="https://cos.ap-guangzhou.myqcloud.com")
    assert (cos.resolved_region(), cos.resolved_addressing()) == ("ap-guangzhou", "virtual")
    keys = cos.static_keys(
        {"TENCENTCLOUD_SECRET_ID": "AKIDx" * 4, "TENCENTCLOUD_SECRET_KEY": "k" * 32}
    )
    assert keys is not None and keys.access_key == "AKIDx" * 4
    assert "k" * 32 not in repr(keys)
    local = ObjectStoreConfig(endpoint="http://127.0.0.1:9000")
    assert (local.resolved_addressing(), local.static_keys({})) == ("path", None)
    with pytest.raises(ValueError):
        ObjectStoreConfig(endpoint="cos.ap-guangzhou.myqcloud.com")

"""Talking to the store: head, put, bounded get and presigned GET URLs, through aiobotocore.

aiobotocore is botocore (the AWS SDK's own request signing and presigning, the reference every
S3-compatible store is tested against) over aiohttp, which the runner already uses; so nothing
here signs by hand. It is an optional extra: `open_object_store` says how to install it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from runner.objects.config import ObjectStoreConfig
from runner.objects.errors import ObjectStoreError, ObjectStoreMissing, ObjectTooLarge
from runner.objects.location import ObjectRef

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client  # pragma: no cover
else:
    S3Client = Any

# botocore's DEBUG records hold request signatures and presigned URLs, and `-vv` sets the
# root logger to DEBUG; its INFO records ("Found credentials in environment variables") are
# noise on a user's screen. Only its warnings and errors reach a log.
for _name in ("botocore", "aiobotocore", "boto3", "s3transfer"):
    logging.getLogger(_name).setLevel(logging.WARNING)

# SigV4 presigned URLs are valid for at most 7 days.
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
# botocore's own retries of a request that failed on the way (5xx, throttling, a reset).
RETRY_ATTEMPTS = 3
READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    content_type: str | None
    metadata: Mapping[str, str] = field(default_factory=dict)


class ObjectStore:
    """One open client. Every failure surfaces as `ObjectStoreError` with one sentence."""

    def __init__(self, client: S3Client, config: ObjectStoreConfig) -> None:
        self._client = client
        self.config = config

    async def head(self, ref: ObjectRef) -> ObjectInfo | None:
        """What the store holds at `ref`, or None when nothing is there."""
        try:
            reply = await self._client.head_object(Bucket=ref.bucket, Key=ref.key)
        except Exception as e:
            if _status(e) == 404:
                return None
            raise _explain(e, "read", ref) from None
        return ObjectInfo(
            size=int(reply.get("ContentLength", 0)),
            content_type=reply.get("ContentType"),
            metadata=dict(reply.get("Metadata") or {}),
        )

    async def put_bytes(
        self,
        ref: ObjectRef,
        data: bytes,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        extra: dict[str, Any] = {}
        if content_type:
            extra["ContentType"] = content_type
        if metadata:
            extra["Metadata"] = dict(metadata)
        try:
            await self._client.put_object(Bucket=ref.bucket, Key=ref.key, Body=data, **extra)
        except Exception as e:
            raise _explain(e, "write", ref) from None

    async def put_file(
        self,
        ref: ObjectRef,
        path: Path,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """Upload a local file (photos are capped in size, so it is read whole)."""
        data = await anyio.Path(path).read_bytes()
        await self.put_bytes(ref, data, content_type=content_type, metadata=metadata)

    async def get_bytes(self, ref: ObjectRef, *, max_bytes: int) -> bytes:
        """The object's content; `ObjectTooLarge` past `max_bytes`, without reading on."""
        try:
            reply = await self._client.get_object(Bucket=ref.bucket, Key=ref.key)
        except Exception as e:
            raise _explain(e, "read", ref) from None
        length = int(reply.get("ContentLength") or 0)
        if length > max_bytes:
            reply["Body"].close()
            raise ObjectTooLarge(f"{ref} is {length} bytes, more than the {max_bytes} allowed")
        # read(n) returns what has arrived, up to n: read until the end, never past the cap.
        parts: list[bytes] = []
        size = 0
        try:
            async with reply["Body"] as stream:
                while chunk := await stream.read(min(READ_CHUNK, max_bytes + 1 - size)):
                    parts.append(chunk)
                    size += len(chunk)
                    if size > max_bytes:
                        raise ObjectTooLarge(f"{ref} is more than the {max_bytes} bytes allowed")
        except ObjectStoreError:
            raise
        except Exception as e:  # cut off, timed out: botocore's and aiohttp's errors
            raise _explain(e, "read", ref) from None
        return b"".join(parts)

    async def copy(self, source: ObjectRef, target: ObjectRef) -> None:
        """A server-side copy within the store (the metadata goes with it); no byte passes
        through this machine."""
        try:
            await self._client.copy_object(
                Bucket=target.bucket,
                Key=target.key,
                CopySource={"Bucket": source.bucket, "Key": source.key},
                MetadataDirective="COPY",
            )
        except Exception as e:
            raise _explain(e, "copy to", target) from None

    async def check_bucket(self, bucket: str) -> None:
        """The bucket exists and these credentials may see it; else `ObjectStoreError`."""
        ref = ObjectRef(bucket, "")
        try:
            await self._client.head_bucket(Bucket=bucket)
        except Exception as e:
            if _status(e) == 404:
                raise ObjectStoreError(
                    f"could not reach s3://{bucket}: NoSuchBucket: the bucket does not exist"
                ) from None
            if _status(e) == 403:
                raise ObjectStoreError(
                    f"could not reach s3://{bucket}: AccessDenied: the credentials may not "
                    "use this bucket (see the README's bucket permissions)"
                ) from None
            raise _explain(e, "reach", ref) from None

    async def presign_get(self, ref: ObjectRef, ttl_seconds: int) -> str:
        """A GET URL anyone holding it may use for `ttl_seconds`: never store or log it."""
        if not 1 <= ttl_seconds <= MAX_PRESIGN_SECONDS:
            raise ValueError(f"a presigned URL lives 1 s to 7 days, not {ttl_seconds} s")
        try:
            url: str = await self._client.generate_presigned_url(
                "get_object",
                Params={"Bucket": ref.bucket, "Key": ref.key},
                ExpiresIn=ttl_seconds,
            )
        except Exception as e:
            raise _explain(e, "sign a link to", ref) from None
        return url


@contextlib.asynccontextmanager
async def open_object_store(config: ObjectStoreConfig) -> AsyncIterator[ObjectStore]:
    """An open client for `config`; `ObjectStoreMissing` when the extra is not installed."""
    try:
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session
    except ImportError:
        raise ObjectStoreMissing() from None

    options: dict[str, Any] = {
        "connect_timeout": CONNECT_TIMEOUT,
        "read_timeout": READ_TIMEOUT,
        "retries": {"max_attempts": RETRY_ATTEMPTS, "mode": "standard"},
        "signature_version": "s3v4",
    }
    addressing = config.resolved_addressing()
    if addressing is not None:
        options["s3"] = {"addressing_style": addressing}
    kwargs: dict[str, Any] = {"config": AioConfig(**options)}
    if config.endpoint:
        kwargs["endpoint_url"] = config.endpoint
    region = config.resolved_region()
    session = get_session()
    kwargs["region_name"] = region or session.get_config_variable("region") or "us-east-1"
    keys = config.static_keys()
    if keys is not None:
        kwargs.update(
            aws_access_key_id=keys.access_key,
            aws_secret_access_key=keys.secret_key,
            aws_session_token=keys.token,
        )
    async with session.create_client("s3", **kwargs) as client:
        yield ObjectStore(client, config)


class SharedObjectStore:
    """One client for everything a scope needs from the store (a run: presigning its inputs
    and keeping its results), opened by the first user that asks for it, so a run that needs
    no bucket never loads the extra, and closed once, by the owner, with `aclose`."""

    def __init__(self, config: ObjectStoreConfig | None = None) -> None:
        self.config = config or ObjectStoreConfig()
        self._stack = contextlib.AsyncExitStack()
        self._store: ObjectStore | None = None
        # Jobs claimed together may all ask first (inputs opened on first need): one opens.
        self._opening = anyio.Lock()

    async def get(self) -> ObjectStore:
        """The open client (`ObjectStoreMissing` when the extra is not installed)."""
        if self._store is None:
            async with self._opening:
                if self._store is None:
                    self._store = await self._stack.enter_async_context(
                        open_object_store(self.config)
                    )
        return self._store

    async def aclose(self) -> None:
        self._store = None
        await self._stack.aclose()


def _status(e: Exception) -> int | None:
    response = getattr(e, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return int(status) if status else None
    return None


def _explain(e: Exception, verb: str, ref: ObjectRef) -> ObjectStoreError:
    """One sentence for a botocore failure; botocore's messages carry no secret."""
    name = type(e).__name__
    response = getattr(e, "response", None)
    if isinstance(response, dict) and "Error" in response:
        code = response["Error"].get("Code") or str(_status(e))
        hint = {
            "NoSuchBucket": "the bucket does not exist",
            "AccessDenied": "the credentials may not do this (see the README's bucket permissions)",
            "403": "the credentials may not do this (see the README's bucket permissions)",
            "InvalidAccessKeyId": "the access key is not known to the store",
            "SignatureDoesNotMatch": "the secret key does not match the access key",
            "404": "no such object",
            "NoSuchKey": "no such object",
        }.get(code, response["Error"].get("Message") or "refused")
        return ObjectStoreError(f"could not {verb} {ref}: {code}: {hint}")
    if name in ("NoCredentialsError", "PartialCredentialsError"):
        return ObjectStoreError(
            f"could not {verb} {ref}: no credentials for the store: set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (or a profile), or use the Tencent pair with a COS endpoint"
        )
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError"):
        return ObjectStoreError(f"could not {verb} {ref}: the store did not answer ({name})")
    return ObjectStoreError(f"could not {verb} {ref}: {name}: {e}")

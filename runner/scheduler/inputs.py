"""A claimed job's inputs as the API takes them: URLs it can fetch.

Inputs in a bucket (`s3://bucket/key`, as `submit --upload` records them) become presigned
GET URLs made here, when the job is claimed, and valid for `--presign-ttl`: a job that waits
all night still sends a fresh one. The signed URL lives only in the request being sent; it is
never stored, logged or put in an error text (`scrub` takes it out of the API's messages).
"""

from __future__ import annotations

import dataclasses
import logging
import re

from runner.api.errors import ApiError
from runner.api.request import ChangeClothesRequest
from runner.objects import ObjectRef, ObjectStoreError, is_bucket_url
from runner.objects.client import SharedObjectStore
from runner.store import Job, Store
from runner.store.inputs import bucket_input_sample

log = logging.getLogger(__name__)

DEFAULT_PRESIGN_TTL = 1800.0
# The query of any URL that carries a SigV4 signature (presigned S3 or COS links).
_SIGNED_QUERY = re.compile(r"\?[^\s\"'<>]*X-Amz-[^\s\"'<>]*", re.IGNORECASE)
# A secret parameter anywhere else: a URL echoed percent-encoded (`%3FX-Amz-Signature%3D…`)
# or only its query. Its value runs to the next `&` (or `%26`), space or quote.
_SIGNED_PARAM = re.compile(
    r"(X-Amz-(?:Signature|Credential|Security-Token)(?:=|%3D))(?:(?!%26)[^&\s\"'<>])*",
    re.IGNORECASE,
)


class InputsUnusable(ObjectStoreError):
    """At the start: the bucket the queue's inputs are in cannot be used (a settings problem,
    like missing credentials); nothing has been called."""


def scrub(text: str) -> str:
    """`text` without the signature of any presigned URL in it."""
    return _SIGNED_PARAM.sub(r"\1…", _SIGNED_QUERY.sub("?…", text))


def scrub_error(err: ApiError) -> ApiError:
    """`err` with no signature in its message nor in its text (`str(err)` is logged)."""
    err.message = scrub(err.message)
    err.args = tuple(scrub(a) if isinstance(a, str) else a for a in err.args)
    return err


class Inputs:
    """Builds the request for a claimed job, presigning its bucket inputs (if any) now.

    `objects` is the run's client, opened on the first bucket input: a run that started with
    none may still claim one (`submit --upload` while it runs, or a job another batch's job
    waits for)."""

    def __init__(
        self, objects: SharedObjectStore | None = None, ttl: float = DEFAULT_PRESIGN_TTL
    ) -> None:
        self._objects = objects
        self._ttl = max(1, int(ttl))

    async def request_for(self, job: Job, rsp_img_type: str) -> ChangeClothesRequest:
        request = job.to_request(rsp_img_type)
        logo = request.logo_param
        logo_url = logo.logo_url if logo is not None else None
        if not any(
            u is not None and is_bucket_url(u)
            for u in (request.model_url, request.clothes_url, logo_url)
        ):
            return request
        request = dataclasses.replace(
            request,
            model_url=await self._url(request.model_url, job),
            clothes_url=await self._url(request.clothes_url, job),
        )
        if logo is not None and logo.logo_url is not None:
            logo = dataclasses.replace(logo, logo_url=await self._url(logo.logo_url, job))
            request = dataclasses.replace(request, logo_param=logo)
        return request

    async def _url(self, value: str, job: Job) -> str:
        if not is_bucket_url(value):
            return value
        if self._objects is None:  # a scheduler built without a run's client (library use)
            raise ObjectStoreError(
                f"job {job.external_id!r} reads {value}, but this scheduler was given no "
                "bucket client"
            )
        client = await self._objects.get()
        return await client.presign_get(ObjectRef.parse(value), self._ttl)


async def inputs_for_run(
    store: Store, objects: SharedObjectStore, ttl: float, batch: str | None
) -> Inputs:
    """The run's `Inputs`, on the run's client (`objects`, shared with a bucket `--out`; its
    owner closes it). When a job to do reads from a bucket already, the client is opened and
    tried at once: missing bucket support, missing credentials or a bucket it may not read
    raise `InputsUnusable` now, in one sentence, not mid-run. Otherwise it is opened when a
    job that reads from a bucket is claimed (one queued after the start)."""
    sample = await bucket_input_sample(store, batch)
    if sample is None:
        return Inputs(objects, ttl)
    try:
        client = await objects.get()
        ref = ObjectRef.parse(sample)
        await client.presign_get(ref, 60)  # signs locally: fails now without credentials
        if await client.head(ref) is None:
            log.warning("%s is not in the bucket: jobs that read it will fail.", ref)
    except ObjectStoreError as e:
        raise InputsUnusable(str(e)) from None
    return Inputs(objects, ttl)

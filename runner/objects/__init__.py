"""Object storage (Tencent COS and any S3-compatible store) for input photos and results.

`location` parses `s3://BUCKET/PREFIX`; `config` says which endpoint, region, addressing and
credentials to use (no client library needed to read it); `client` talks to the store through
aiobotocore, an optional extra (`pip install 'changeclothes-runner[s3]'`). Like the API
boundary, this package knows nothing of the queue database.
"""

from runner.objects.config import ObjectStoreConfig
from runner.objects.errors import ObjectStoreError, ObjectStoreMissing
from runner.objects.location import BucketLocation, ObjectRef, is_bucket_url

__all__ = [
    "BucketLocation",
    "ObjectRef",
    "ObjectStoreConfig",
    "ObjectStoreError",
    "ObjectStoreMissing",
    "is_bucket_url",
]

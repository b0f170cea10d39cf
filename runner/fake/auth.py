"""The gateway's checks on one API call: common headers, then the TC3 signature.

Checked in the order the real gateway reports them: a missing header before a wrong one,
the action and version before the region, the clock before the key, the key before the
signature. The signature is recomputed with `runner.api.signing`, the same algorithm the
official SDK uses, over the Host header and the body bytes exactly as the client sent them.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping

from runner.api import signing
from runner.api.request import ACTION, SERVICE, VERSION
from runner.fake.config import FakeCredentials
from runner.fake.protocol import Rejected

MAX_CLOCK_SKEW = 300  # seconds, either way
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"

# ap-singapore, na-siliconvalley, eu-frankfurt, ap-shanghai-fsi, ...
_REGION = re.compile(r"^(ap|na|eu|sa|me|af)-[a-z]+(-[a-z0-9]+)*$")


def _required(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name, "").strip()
    if not value:
        raise Rejected("MissingParameter")
    return value


def check_call(
    headers: Mapping[str, str],
    host: str,
    body: bytes,
    now: float,
    credentials: FakeCredentials,
) -> None:
    """Raise `Rejected` with the gateway's code unless the call is properly signed.

    `headers` must look names up case-insensitively (aiohttp's request headers do).
    """
    action = _required(headers, "X-TC-Action")
    if action != ACTION:
        raise Rejected("InvalidAction")
    version = _required(headers, "X-TC-Version")
    if version != VERSION:
        raise Rejected("NoSuchVersion")
    region = _required(headers, "X-TC-Region")
    if not _REGION.match(region):
        raise Rejected("UnsupportedRegion")
    timestamp_text = _required(headers, "X-TC-Timestamp")
    authorization = _required(headers, "Authorization")

    if not timestamp_text.isdigit():
        raise Rejected("InvalidParameter")
    timestamp = int(timestamp_text)
    parsed = signing.parse_authorization(authorization)
    if (
        parsed is None
        or parsed.service != SERVICE
        or parsed.signed_headers != signing.SIGNED_HEADERS
        or not parsed.secret_id
        or not parsed.signature
    ):
        raise Rejected("AuthFailure.InvalidAuthorization")
    if abs(now - timestamp) > MAX_CLOCK_SKEW:
        raise Rejected("AuthFailure.SignatureExpire")
    if parsed.secret_id != credentials.secret_id:
        raise Rejected("AuthFailure.SecretIdNotFound")

    payload = body
    if headers.get("X-TC-Content-SHA256", "") == UNSIGNED_PAYLOAD:
        # The SDK's `unsignedPayload` option: the body is replaced by this marker.
        payload = UNSIGNED_PAYLOAD.encode()
    expected = signing.signature(
        credentials.secret_key,
        host,
        payload,
        timestamp,
        SERVICE,
        content_type=headers.get("Content-Type", ""),
    )
    if not hmac.compare_digest(expected.encode(), parsed.signature.encode()):
        raise Rejected("AuthFailure.SignatureFailure")
    if credentials.token is not None and not hmac.compare_digest(
        headers.get("X-TC-Token", "").encode(), credentials.token.encode()
    ):
        raise Rejected("AuthFailure.TokenFailure")

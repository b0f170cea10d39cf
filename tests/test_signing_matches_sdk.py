"""Our TC3 signing gives the same Authorization header as the official SDK's own code."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from tencentcloud.common.abstract_client import AbstractClient
from tencentcloud.common.credential import Credential
from tencentcloud.common.http.request import RequestInternal
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

from runner.api import signing

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


def sdk_authorization(
    secret_id: str, secret_key: str, host: str, region: str, params: dict[str, Any], ts: int
) -> tuple[str, bytes]:
    """Sign through the SDK's own request builder, with its clock frozen at `ts`."""
    http = HttpProfile(protocol="http", endpoint=host)
    client = AbstractClient(
        Credential(secret_id, secret_key), region, ClientProfile(httpProfile=http)
    )
    client._service = "aiart"
    client._apiVersion = "2022-12-29"
    req = RequestInternal(host, "POST", "/", header={})
    import tencentcloud.common.abstract_client as module

    real_time = module.time.time
    module.time.time = lambda: ts
    try:
        client._build_req_with_tc3_signature("ChangeClothes", params, req, None)
    finally:
        module.time.time = real_time
    body = req.data if isinstance(req.data, bytes) else req.data.encode("utf-8")
    return req.header["Authorization"], body


@settings(max_examples=200, deadline=None)
@given(
    secret_id=st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40),
    # The SDK refuses keys with white space in them; any other character goes.
    secret_key=st.text(st.characters(exclude_categories=("Z", "C")), min_size=1, max_size=64),
    ts=st.integers(min_value=0, max_value=4_102_444_800),
    host=st.sampled_from(
        ["aiart.intl.tencentcloudapi.com", "aiart.tencentcloudapi.com", "127.0.0.1:8765"]
    )
    | st.from_regex(r"[a-z0-9]{1,12}(\.[a-z0-9]{1,12}){0,3}(:[0-9]{1,5})?", fullmatch=True),
    region=st.sampled_from(["ap-singapore", "ap-guangzhou", "na-siliconvalley", ""]),
    params=st.dictionaries(st.text(max_size=12), json_values, max_size=6),
)
def test_authorization_identical_to_sdk(
    secret_id: str, secret_key: str, ts: int, host: str, region: str, params: dict[str, Any]
) -> None:
    expected, body = sdk_authorization(secret_id, secret_key, host, region, params, ts)
    assert json.loads(body) == params
    assert signing.authorization(secret_id, secret_key, host, body, ts, "aiart") == expected


def test_scope_date_is_utc_day_of_timestamp() -> None:
    # 23:59:59 UTC on 2026-11-25 is already the 26th in Beijing; the scope must say the 25th.
    ts = int(datetime(2026, 11, 25, 23, 59, 59, tzinfo=UTC).timestamp())
    header = signing.authorization("AKID", "key", "h", b"{}", ts, "aiart")
    assert "Credential=AKID/2026-11-25/aiart/tc3_request" in header


def test_parse_authorization_round_trips() -> None:
    header = signing.authorization("AKIDx", "k", "h", b"{}", 1_700_000_000, "aiart")
    parsed = signing.parse_authorization(header)
    assert parsed is not None
    assert (parsed.secret_id, parsed.date, parsed.service) == ("AKIDx", "2023-11-14", "aiart")
    assert parsed.signed_headers == "content-type;host"
    assert parsed.signature == signing.signature("k", "h", b"{}", 1_700_000_000, "aiart")
    assert signing.parse_authorization("Basic abc") is None

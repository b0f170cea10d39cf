"""The wire shape of the fake's answers: API bodies as the vendor documents them, and the
object-storage XML its result URLs answer with once they have expired."""

from __future__ import annotations

import json
import uuid
from typing import Any
from xml.sax.saxutils import escape

from runner.api.errors import rule_for

JSON_CONTENT_TYPE = "application/json"


class Rejected(Exception):
    """A request the service answers with an error code (the message comes from the table)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def new_request_id() -> str:
    return str(uuid.uuid4())


def error_body(code: str, request_id: str) -> dict[str, Any]:
    return {
        "Response": {
            "Error": {"Code": code, "Message": rule_for(code).message},
            "RequestId": request_id,
        }
    }


def success_body(result_image: str, request_id: str) -> dict[str, Any]:
    return {"Response": {"ResultImage": result_image, "RequestId": request_id}}


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def storage_error_xml(code: str, message: str, resource: str, request_id: str) -> bytes:
    """An object-storage error document (what a presigned URL answers once expired)."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        "<Error>"
        f"<Code>{escape(code)}</Code>"
        f"<Message>{escape(message)}</Message>"
        f"<Resource>{escape(resource)}</Resource>"
        f"<RequestId>{escape(request_id)}</RequestId>"
        "</Error>"
    ).encode()

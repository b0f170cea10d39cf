"""Options shared by several commands, each with its `CHANGECLOTHES_*` variable."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

INTERNATIONAL_ENDPOINT = "https://aiart.intl.tencentcloudapi.com"
MAINLAND_ENDPOINT = "https://aiart.tencentcloudapi.com"
DEFAULT_REGION = "ap-singapore"
DEFAULT_DB = "changeclothes.db"
DEFAULT_OUT = "results"


def db_option(f: F) -> F:
    return click.option(
        "--db",
        default=DEFAULT_DB,
        show_default=True,
        envvar="CHANGECLOTHES_DB",
        help="Queue database: a file path (SQLite) or a SQLAlchemy URL "
        "(postgresql+asyncpg://... to share one queue between hosts).",
    )(f)


def out_option(f: F) -> F:
    return click.option(
        "--out",
        default=DEFAULT_OUT,
        show_default=True,
        envvar="CHANGECLOTHES_OUT",
        type=click.Path(file_okay=False),
        help="Folder the result images are written to.",
    )(f)


def endpoint_options(f: F) -> F:
    f = click.option(
        "--mainland",
        is_flag=True,
        envvar="CHANGECLOTHES_MAINLAND",
        help=f"Use the mainland China endpoint ({MAINLAND_ENDPOINT}).",
    )(f)
    f = click.option(
        "--endpoint",
        default=None,
        envvar="CHANGECLOTHES_ENDPOINT",
        help=f"API endpoint URL [default: {INTERNATIONAL_ENDPOINT}]; "
        "http://127.0.0.1:PORT for the local fake server.",
    )(f)
    f = click.option(
        "--region",
        default=DEFAULT_REGION,
        show_default=True,
        envvar="CHANGECLOTHES_REGION",
        help="Tencent Cloud region sent as X-TC-Region.",
    )(f)
    f = click.option(
        "--profile",
        default="default",
        show_default=True,
        envvar="CHANGECLOTHES_PROFILE",
        help="Section of ~/.tencentcloud/credentials to read when the "
        "TENCENTCLOUD_SECRET_* variables are not set.",
    )(f)
    return f


def resolve_endpoint(endpoint: str | None, mainland: bool) -> str:
    if endpoint:
        return endpoint.rstrip("/")
    return MAINLAND_ENDPOINT if mainland else INTERNATIONAL_ENDPOINT

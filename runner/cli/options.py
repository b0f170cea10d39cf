"""Options shared by several commands, each with its `CHANGECLOTHES_*` variable."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import click

from runner.credentials import DEFAULT_PROFILE, ENV_REGION
from runner.regions import unknown_region_warning

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
        callback=_check_endpoint,
        help=f"API endpoint URL [default: {INTERNATIONAL_ENDPOINT}]; "
        "http://127.0.0.1:PORT for the local fake server.",
    )(f)
    f = click.option(
        "--region",
        default=DEFAULT_REGION,
        show_default=True,
        envvar=["CHANGECLOTHES_REGION", ENV_REGION],
        callback=_check_region,
        help="Tencent Cloud region sent as X-TC-Region (an unknown name is used after a warning).",
    )(f)
    f = click.option(
        "--profile",
        default=None,
        envvar="CHANGECLOTHES_PROFILE",
        help="Section of ~/.tencentcloud/credentials (or /etc/tencentcloud/credentials) to "
        "use; naming one ignores the TENCENTCLOUD_SECRET_* variables "
        f"[default: those variables, else [{DEFAULT_PROFILE}]].",
    )(f)
    return f


def _check_endpoint(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise click.BadParameter(
            f"{value!r} is not an http:// or https:// URL, e.g. {INTERNATIONAL_ENDPOINT} "
            "or http://127.0.0.1:8765."
        )
    return value


def _check_region(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    warning = unknown_region_warning(value)
    if warning:
        click.echo(warning, err=True)
    return value


def resolve_endpoint(endpoint: str | None, mainland: bool) -> str:
    if endpoint:
        return endpoint.rstrip("/")
    return MAINLAND_ENDPOINT if mainland else INTERNATIONAL_ENDPOINT

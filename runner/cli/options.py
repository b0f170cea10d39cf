"""Options shared by several commands, each with its `CHANGECLOTHES_*` variable."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import click

from runner.credentials import DEFAULT_PROFILE, ENV_REGION
from runner.objects.config import ADDRESSING_CHOICES, ObjectStoreConfig
from runner.regions import unknown_region_warning

F = TypeVar("F", bound=Callable[..., Any])

INTERNATIONAL_ENDPOINT = "https://aiart.intl.tencentcloudapi.com"
MAINLAND_ENDPOINT = "https://aiart.tencentcloudapi.com"
DEFAULT_REGION = "ap-singapore"
DEFAULT_DB = "changeclothes.db"
DEFAULT_OUT = "results"


class Duration(click.ParamType):
    """Seconds, or a number with a unit: 90, 90s, 5m, 1.5h."""

    name = "duration"
    _UNITS = {"s": 1, "m": 60, "h": 3600}

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float):
            return float(value)
        text = str(value).strip().lower()
        scale = self._UNITS.get(text[-1:], None)
        try:
            seconds = float(text[:-1] if scale else text) * (scale or 1)
        except ValueError:
            self.fail(f"{value!r} is not a duration (e.g. 90, 90s, 5m, 1.5h)", param, ctx)
        if seconds <= 0:
            self.fail(f"{value!r} must be more than 0", param, ctx)
        return seconds


class ByteSize(click.ParamType):
    """Bytes, or a number with a unit: 52428800, 50MB, 50MiB, 2GB."""

    name = "size"
    _UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30}

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip().lower().removesuffix("ib").removesuffix("b")
        number = text.rstrip("kmg")
        try:
            size = int(float(number) * self._UNITS[text[len(number) :]])
        except (ValueError, KeyError):
            self.fail(f"{value!r} is not a size (e.g. 50MB, 2GB)", param, ctx)
        if size < 1024:
            self.fail(f"{value!r} is too small: at least 1 KB", param, ctx)
        return size


def db_option(f: F) -> F:
    return click.option(
        "--db",
        default=DEFAULT_DB,
        show_default=True,
        envvar="CHANGECLOTHES_DB",
        help="Queue database: a file path (SQLite) or a SQLAlchemy URL "
        "(postgresql+asyncpg://... to share one queue between hosts).",
    )(f)


def stale_after_option(f: F) -> F:
    return click.option(
        "--stale-after",
        default="60s",
        show_default=True,
        type=Duration(),
        envvar="CHANGECLOTHES_STALE_AFTER",
        help="A runner whose heartbeat is older than this is dead: its calls cut short go "
        "back to the queue and its API leases free. Seconds, or 90s, 5m.",
    )(f)


def out_option(f: F) -> F:
    return click.option(
        "--out",
        default=DEFAULT_OUT,
        show_default=True,
        envvar="CHANGECLOTHES_OUT",
        type=click.Path(file_okay=False),
        help="Folder the result images are written to, or s3://BUCKET/PREFIX for a bucket "
        '(see README, "Results in a bucket").',
    )(f)


def state_dir_option(f: F) -> F:
    return click.option(
        "--state-dir",
        default=None,
        envvar="CHANGECLOTHES_STATE_DIR",
        type=click.Path(file_okay=False),
        help="Local folder for the paid-results journal, run summaries and (with a bucket) "
        "results on their way up [default: the --out folder; with a bucket, <db>.state beside "
        "a SQLite queue, ./.changeclothes-state for PostgreSQL].",
    )(f)


def link_ttl_option(f: F) -> F:
    return click.option(
        "--link-ttl",
        default="7d",
        show_default=True,
        type=LinkTtl(),
        envvar="CHANGECLOTHES_LINK_TTL",
        help="How long presigned links to results in a bucket stay valid: anyone holding "
        "one can open it until then. Seconds, or 90m, 12h, 7d (the most S3 allows).",
    )(f)


class LinkTtl(Duration):
    """A presigned link's life: a duration with days allowed, at most 7 days (SigV4's cap)."""

    name = "duration"
    _UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    MAX = 7 * 86400

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        seconds = super().convert(value, param, ctx)
        if seconds > self.MAX:
            self.fail(f"{value!r}: a presigned URL lives at most 7 days", param, ctx)
        return max(seconds, 1.0)


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


def price_option(f: F) -> F:
    return click.option(
        "--price",
        default=None,
        type=click.FloatRange(0),
        envvar="CHANGECLOTHES_PRICE",
        metavar="PER_CALL",
        help="Price of one paid call, in your currency: the estimate then says what the "
        "queue will cost.",
    )(f)


def s3_options(f: F) -> F:
    """Where s3:// locations live: the three settings every bucket-using command shares.

    The command receives `s3_endpoint`, `s3_region`, `s3_addressing`, which
    `object_store_config` turns into one `ObjectStoreConfig`. Credentials never come from the
    command line (the AWS chain, or the Tencent pair for a COS endpoint)."""
    f = click.option(
        "--s3-addressing",
        type=click.Choice(ADDRESSING_CHOICES),
        default="auto",
        show_default=True,
        envvar="CHANGECLOTHES_S3_ADDRESSING",
        help="Bucket in the host name (virtual, COS) or in the path (path, most local "
        "stores); auto picks virtual for COS, path for an IP address or localhost.",
    )(f)
    f = click.option(
        "--s3-region",
        default=None,
        envvar="CHANGECLOTHES_S3_REGION",
        help="Region to sign bucket requests for [default: COS's from --s3-endpoint, else "
        "AWS_REGION / the AWS config, else us-east-1].",
    )(f)
    f = click.option(
        "--s3-endpoint",
        default=None,
        envvar="CHANGECLOTHES_S3_ENDPOINT",
        help="S3-compatible endpoint for s3:// locations, e.g. "
        "https://cos.ap-guangzhou.myqcloud.com for Tencent COS [default: AWS S3].",
    )(f)
    return f


def object_store_config(
    endpoint: str | None, region: str | None, addressing: str
) -> ObjectStoreConfig:
    """The store settings, or a usage error naming the bad value."""
    try:
        return ObjectStoreConfig(endpoint=endpoint, region=region, addressing=addressing)  # type: ignore[arg-type]
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--s3-endpoint") from None

"""`submit --upload` and `--images-dir`: local photos in a manifest, uploaded before queueing."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import anyio
import click

from runner.cli.options import object_store_config
from runner.cli.run_end import first_leaf
from runner.manifest import ManifestFormatError, ManifestReport
from runner.manifest.local import LocalFiles, reading_local_files
from runner.objects import BucketLocation, ObjectStoreError

F = TypeVar("F", bound=Callable[..., Any])

# Exit status of `submit` when the bucket cannot be used (missing extra, credentials, bucket,
# permissions): the same as a usage or file error, nothing queued.
EXIT_BUCKET = 2
EXIT_INVALID = 1


def upload_option(f: F) -> F:
    return click.option(
        "--upload",
        default=None,
        metavar="s3://BUCKET/PREFIX",
        envvar="CHANGECLOTHES_UPLOAD",
        help="Upload the local image files the manifest names to this bucket (each distinct "
        "file once, as PREFIX/<sha256>.<ext>; nothing when it is there already) and queue "
        "the objects; `run` presigns them at call time. Nothing is made public.",
    )(f)


def images_dir_option(f: F) -> F:
    return click.option(
        "--images-dir",
        default=None,
        envvar="CHANGECLOTHES_IMAGES_DIR",
        type=click.Path(exists=True, file_okay=False, path_type=Path),
        help="Folder that relative image paths in the manifest start from [default: the "
        "manifest's folder; the current one for stdin]. Not with --base-url.",
    )(f)


def images_root(manifest: Path, images_dir: Path | None, base_url: str | None) -> Path:
    """The folder relative local paths start from."""
    if images_dir is not None and base_url is not None:
        raise click.UsageError(
            "--images-dir and --base-url both say where relative image paths point: give one"
        )
    if images_dir is not None:
        return images_dir.absolute()
    if str(manifest) == "-":
        return Path.cwd()
    return manifest.absolute().parent


def upload_location(upload: str) -> BucketLocation:
    try:
        return BucketLocation.parse(upload)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--upload") from None


@contextmanager
def upload_images(
    manifest: Path,
    fmt: str | None,
    base_url: str | None,
    root: Path,
    upload: str,
    s3: tuple[str | None, str | None, str],
    skip_invalid: bool,
) -> Iterator[LocalFiles]:
    """Upload, say what was done, then read manifests with the local files mapped to their
    objects. A bucket that cannot be used ends the command (exit 2, nothing queued)."""
    destination = upload_location(upload)
    config = object_store_config(*s3)
    from runner.uploads import upload_local_images  # imports the preflight's image decoding

    async def go() -> Any:
        return await upload_local_images(
            manifest,
            fmt=fmt,
            base_url=base_url,
            root=root,
            destination=destination,
            config=config,
            skip_invalid=skip_invalid,
        )

    try:
        result = anyio.run(go)
    except BaseException as caught:
        _exit_for(first_leaf(caught), manifest)
        raise
    if result.invalid is not None:
        _refuse(manifest, result.invalid)
    for line in result.lines(destination):
        click.echo(line)
    with reading_local_files(result.local) as local:
        yield local


def _exit_for(exc: BaseException, manifest: Path) -> None:
    """Exit with one sentence for an upload that could not be done (else return)."""
    if isinstance(exc, ObjectStoreError):
        click.echo(f"Error: {exc}; nothing was queued.", err=True)
        sys.exit(EXIT_BUCKET)
    if isinstance(exc, ManifestFormatError):
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EXIT_BUCKET)
    if isinstance(exc, OSError):
        click.echo(f"Error: cannot read {manifest}: {exc.strerror or exc}", err=True)
        sys.exit(EXIT_BUCKET)


def _refuse(manifest: Path, report: ManifestReport) -> NoReturn:
    """Invalid rows, found before anything was uploaded: list them, exit 1."""
    count = report.problem_count
    click.echo(
        f"{manifest.name}: {count} invalid row{'s' if count != 1 else ''}; nothing was uploaded "
        "or queued (fix them, or pass --skip-invalid to upload and queue the valid rows):",
        err=True,
    )
    for problem in report.problems:
        click.echo(f"  {problem}", err=True)
    if count > len(report.problems):
        click.echo(f"  ... and {count - len(report.problems)} more", err=True)
    sys.exit(EXIT_INVALID)

"""`submit -` / `validate -`: a manifest piped in is spooled to a temporary file first.

The manifest reader takes a path and reads it more than once (a check, then the queueing),
so stdin is copied to disk rather than read as a stream.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import click


def _sniff(head: bytes) -> str:
    """JSONL when the first non-blank byte opens an object, else CSV."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return "jsonl" if text.startswith(b"{") else "csv"


@contextmanager
def manifest_file(
    manifest: Path, fmt: str | None, stream: BinaryIO | None = None
) -> Iterator[tuple[Path, str | None]]:
    """Yield (path, format) to read: `manifest` itself, or stdin's copy when it is `-`."""
    if str(manifest) != "-":
        yield manifest, fmt
        return
    stream = stream if stream is not None else sys.stdin.buffer
    if sys.stdin.isatty() and stream is sys.stdin.buffer:
        raise click.UsageError("MANIFEST is '-' but nothing is piped to stdin")
    with tempfile.TemporaryDirectory(prefix="changeclothes-stdin-") as tmp:
        head = stream.read(64 * 1024)
        fmt = fmt or _sniff(head)
        path = Path(tmp) / f"stdin.{fmt}"
        with path.open("wb") as out:
            out.write(head)
            shutil.copyfileobj(stream, out)
        yield path, fmt

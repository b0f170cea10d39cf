"""Streaming a CSV or JSONL manifest into validated rows, one line at a time."""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from runner.manifest.errors import MAX_PROBLEMS, ManifestError, ManifestFormatError
from runner.manifest.header import listed, map_columns, sniff_delimiter
from runner.manifest.ids import IdRegistry
from runner.manifest.keys import derived_id, plain_dedupe_key
from runner.manifest.lines import MAX_LINE_BYTES, Lines
from runner.manifest.plain import PlainRow, PlainRows
from runner.manifest.rows import (
    ManifestRow,
    Problem,
    field_for,
    validate_row,
)
from runner.manifest.values import InvalidValue, normalize_base_url, short

FORMATS = ("csv", "jsonl")
_EXTENSIONS = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}

# Cells may hold a Base64 logo: allow fields as long as a line may be.
csv.field_size_limit(max(csv.field_size_limit(), MAX_LINE_BYTES))


def detect_format(path: str | Path, fmt: str | None = None) -> str:
    """`csv` or `jsonl`, from `fmt` if given, else from the file name's extension."""
    if fmt:
        fmt = fmt.lower()
        if fmt not in FORMATS:
            raise ManifestFormatError(f"unknown manifest format {fmt!r}; use csv or jsonl")
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix not in _EXTENSIONS:
        raise ManifestFormatError(
            f"cannot tell the format of {Path(path).name!r} from its extension; "
            "name it .csv or .jsonl, or pass --format"
        )
    return _EXTENSIONS[suffix]


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


FlatRow = tuple[int, str, str, str, str, dict[str, Any], str]
"""A valid row as `ManifestReader.flat` gives it: (line, id, model_url, clothes_url,
clothes_type, options, dedupe_key)."""


@dataclass
class ManifestStats:
    """What a reader saw; complete once iteration has finished."""

    format: str = ""
    delimiter: str | None = None
    lines: int = 0
    bytes_read: int = 0
    rows: int = 0  # valid rows yielded
    invalid: int = 0  # problems yielded
    duplicates_merged: int = 0  # identical rows without an id, counted once
    sha256: str = ""
    columns: list[str] = field(default_factory=list)


class ManifestReader:
    """Streams a manifest: a `ManifestRow` for each valid row, a `Problem` for each invalid one.

    Memory does not grow with the file: rows are read, checked and handed on one at a time,
    and the ids seen so far live in a scratch file (`IdRegistry`). File-level faults (no
    header, unknown columns, UTF-16) raise `ManifestError` on iteration; an unknown format
    or a bad `base_url` raises `ManifestFormatError` at once; `OSError` if it can't be opened.

        with ManifestReader("pairs.csv", base_url="https://cdn.example/") as reader:
            for item in reader:
                ...
            print(reader.stats.rows, reader.stats.sha256)
    """

    def __init__(
        self, path: str | Path, *, fmt: str | None = None, base_url: str | None = None
    ) -> None:
        self.path = Path(path)
        self.stats = ManifestStats(format=detect_format(path, fmt))
        try:
            self.base_url = normalize_base_url(base_url) if base_url else None
        except InvalidValue as exc:
            raise ManifestFormatError(str(exc)) from None
        self._fh: IO[bytes] = open(self.path, "rb")  # noqa: SIM115 - closed in close()
        self._lines = Lines(self._fh)
        self._ids = IdRegistry()
        self._plain = PlainRows(self.base_url)
        self._columns: list[str] = []  # a CSV header's canonical names ("" for none)

    @property
    def bytes_read(self) -> int:
        return self._lines.bytes_read

    def close(self) -> None:
        self._fh.close()
        self._ids.close()

    def __enter__(self) -> ManifestReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[ManifestRow | Problem]:
        for item in self._checked():
            if isinstance(item, tuple):
                line, ident, model_url, clothes_url, clothes_type, derived = item
                yield ManifestRow(
                    line=line,
                    id=ident,
                    model_url=model_url,
                    clothes_url=clothes_url,
                    clothes_type=clothes_type,
                    id_derived=derived,
                )
            else:
                yield item

    def flat(self) -> Iterator[FlatRow | Problem]:
        """As iteration, but each valid row as a `FlatRow` tuple: no row object is built for
        a plain row, the cheapest form for a store to take a large manifest in."""
        for item in self._checked():
            if isinstance(item, tuple):
                line, ident, model_url, clothes_url, clothes_type, _ = item
                key = plain_dedupe_key(model_url, clothes_url, clothes_type)
                yield (line, ident, model_url, clothes_url, clothes_type, {}, key)
            elif isinstance(item, ManifestRow):
                yield (
                    item.line,
                    item.id,
                    item.model_url,
                    item.clothes_url,
                    item.clothes_type,
                    item.options,
                    item.dedupe_key,
                )
            else:
                yield item

    def _checked(self) -> Iterator[PlainRow | ManifestRow | Problem]:
        """Every row checked, its id claimed: a plain row as a `PlainRow` tuple (fast path),
        any other valid row as a `ManifestRow`, an invalid one as a `Problem`."""
        records: Iterator[tuple[int, list[str]] | tuple[int, dict[str, Any]] | Problem] = (
            self._csv_records() if self.stats.format == "csv" else self._jsonl_records()
        )
        plain, plain_record = self._plain.check, self._plain.check_record
        claim = self._ids.claim
        stats = self.stats
        for item in records:
            if isinstance(item, Problem):
                stats.invalid += 1
                yield item
                continue
            line, values = item
            result: PlainRow | ManifestRow
            if isinstance(values, list):  # a CSV record, in the header's columns
                fast = plain_record(line, values)
                raw: dict[str, Any] = {}
                if fast is None:
                    named = zip(self._columns, values, strict=True)
                    raw = {name: value for name, value in named if name}
            else:
                raw = values
                fast = plain(line, raw)
            if fast is not None:
                _, ident, model_url, clothes_url, clothes_type, derived = fast
                if derived:
                    ident = derived_id(model_url, clothes_url, clothes_type, {})
                    fast = (line, ident, model_url, clothes_url, clothes_type, True)
                result = fast
            else:
                checked = validate_row(line, raw, self.base_url)
                if isinstance(checked, Problem):
                    stats.invalid += 1
                    yield checked
                    continue
                result = checked
                ident, derived = checked.id, checked.id_derived
            first = claim(ident, line)
            if first is not None:
                if derived and first[1] == ident:
                    stats.duplicates_merged += 1
                    continue
                stats.invalid += 1
                yield Problem(
                    line,
                    f"id {ident!r} is already used on line {first[0]}"
                    + (f" (as {first[1]!r})" if first[1] != ident else ""),
                    ident,
                )
                continue
            stats.rows += 1
            yield result
        self.stats.lines = self._lines.number
        self.stats.bytes_read = self._lines.bytes_read
        self.stats.sha256 = self._lines.digest.hexdigest()

    def _csv_records(self) -> Iterator[tuple[int, list[str]] | Problem]:
        lines = self._lines
        header_line: str | None = None
        for text in lines:  # the header is the first line that is not blank
            if lines.pending or text.strip():
                header_line = text
                break
        if header_line is None:
            raise ManifestError([Problem(max(lines.number, 1), "the manifest is empty: no header")])
        header_problem = lines.take_pending()
        if header_problem:
            raise ManifestError([header_problem])
        first_line = lines.number
        delimiter = sniff_delimiter(header_line)
        self.stats.delimiter = delimiter
        reader = csv.reader(itertools.chain([header_line], lines), delimiter=delimiter)
        try:
            header = next(reader)
        except csv.Error as exc:
            raise ManifestError(
                [Problem(first_line, f"the header is not valid CSV: {exc}")]
            ) from None
        columns = map_columns(header, first_line)
        self.stats.columns = [c for c in columns if c]
        self._columns = columns
        self._plain.columns(columns)
        end = first_line + reader.line_num - 1
        while True:
            start = end + 1
            try:
                record = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                end = first_line + reader.line_num - 1
                lines.take_pending()
                yield Problem(start, f"not valid CSV: {exc}")
                continue
            end = first_line + reader.line_num - 1
            line_problem = lines.take_pending()
            if line_problem is not None:
                yield line_problem
                continue
            if not any(value.strip() for value in record):
                continue  # a blank line, or a row of empty cells
            if len(record) != len(columns):
                yield Problem(
                    start, f"{len(record)} fields, but the header has {len(columns)} columns"
                )
                continue
            yield start, record

    def _jsonl_records(self) -> Iterator[tuple[int, dict[str, Any]] | Problem]:
        lines = self._lines
        for text in lines:
            number = lines.number
            line_problem = lines.take_pending()
            if line_problem is not None:
                yield line_problem
                continue
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except ValueError as exc:
                yield Problem(number, f"not valid JSON: {getattr(exc, 'msg', exc)}")
                continue
            except RecursionError:
                yield Problem(number, "not valid JSON: nested too deeply")
                continue
            if not isinstance(obj, dict):
                yield Problem(number, f"expected a JSON object, got {type(obj).__name__}")
                continue
            raw: dict[str, Any] = {}
            problems: list[str] = []
            unknown = [short(k, 40) for k in obj if field_for(k) is None]
            if unknown:
                problems.append(f"unknown field{'s' if len(unknown) > 1 else ''} {listed(unknown)}")
            repeats: list[tuple[str, str]] = []
            for key, value in obj.items():
                name = field_for(key)
                if name is None:
                    continue
                if name in raw:
                    repeats.append((short(key, 40), name))
                raw[name] = value
            if len(repeats) == 1:
                problems.append(f"field {repeats[0][0]} repeats the {repeats[0][1]} field")
            elif repeats:
                named = listed([f"{key} ({name})" for key, name in repeats])
                problems.append(f"{len(repeats)} fields repeat an earlier one: {named}")
            if problems:
                yield Problem(number, "; ".join(problems))
                continue
            yield number, raw


@dataclass
class ManifestReport:
    """The outcome of checking a whole manifest without queuing it."""

    stats: ManifestStats
    problems: list[Problem]
    problem_count: int

    @property
    def ok(self) -> bool:
        return self.problem_count == 0


def validate_manifest(
    path: str | Path, *, fmt: str | None = None, base_url: str | None = None
) -> ManifestReport:
    """Read the whole manifest and list its problems (the first 50, and how many in all).

    File-level faults come back as problems too; `ManifestFormatError` and `OSError` still
    raise, as they are about how the file was asked for, not about what is in it.
    """
    problems: list[Problem] = []
    count = 0
    with ManifestReader(path, fmt=fmt, base_url=base_url) as reader:
        try:
            for item in reader:
                if isinstance(item, Problem):
                    count += 1
                    if len(problems) < MAX_PROBLEMS:
                        problems.append(item)
        except ManifestError as exc:
            return ManifestReport(reader.stats, exc.problems, exc.count)
    return ManifestReport(reader.stats, problems, count)

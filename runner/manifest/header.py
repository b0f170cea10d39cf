"""A CSV manifest's header: its delimiter, and which field each column names."""

from __future__ import annotations

from runner.manifest.errors import ManifestError
from runner.manifest.rows import FIELDS, REQUIRED_FIELDS, Problem, field_for
from runner.manifest.values import short

LISTED_NAMES = 5  # column or field names quoted in one problem; the rest are counted
_DELIMITERS = (",", ";", "\t")


def sniff_delimiter(header: str) -> str:
    """The delimiter that occurs most often in the header line outside quotes; comma on a tie."""
    counts = dict.fromkeys(_DELIMITERS, 0)
    quoted = False
    for c in header:
        if c == '"':
            quoted = not quoted
        elif not quoted and c in counts:
            counts[c] += 1
    best = max(_DELIMITERS, key=lambda d: (counts[d], d == ","))
    return best if counts[best] else ","


def listed(items: list[str], limit: int = LISTED_NAMES) -> str:
    """The first `limit` items joined by commas, then how many more: bounded whatever the input."""
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def map_columns(names: list[str], line: int) -> list[str]:
    """Canonical field names for the header's columns, or a ManifestError naming the bad ones.

    Each kind of fault is one problem listing a few columns and a count, so a header of
    100,000 bad columns still gives a message of a few lines.
    """
    fields: list[str] = []
    unknown: list[str] = []
    unnamed: list[str] = []
    repeats: list[tuple[str, str]] = []
    for i, name in enumerate(names, start=1):
        name = name.strip()
        canonical = field_for(name) if name else None
        if not name:
            unnamed.append(str(i))
        elif canonical is None:
            unknown.append(short(name, 40))
        elif canonical in fields:
            repeats.append((short(name, 40), canonical))
            canonical = None
        fields.append(canonical or "")
    problems: list[str] = []
    if unknown:
        problems.append(
            f"unknown column{'s' if len(unknown) > 1 else ''} {listed(unknown)}; "
            f"known columns are {', '.join(FIELDS)} (or the API's names, e.g. ModelUrl)"
        )
    if unnamed:
        problems.append(
            f"column{'s' if len(unnamed) > 1 else ''} {listed(unnamed)} "
            f"{'have' if len(unnamed) > 1 else 'has'} no name"
        )
    if len(repeats) == 1:
        problems.append(f"column {repeats[0][0]} repeats the {repeats[0][1]} column")
    elif repeats:
        named = listed([f"{name} ({field})" for name, field in repeats])
        problems.append(f"{len(repeats)} columns repeat an earlier one: {named}")
    missing = [f for f in REQUIRED_FIELDS if f not in fields]
    if missing:
        problems.append(
            f"missing required column{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
        )
    if problems:
        raise ManifestError([Problem(line, p) for p in problems])
    return fields

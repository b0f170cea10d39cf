"""Manifest reading: CSV or JSONL in, validated `ManifestRow`s out. Knows nothing of the store.

A manifest lists model/garment pairs, one per row. Columns (or JSONL keys) are the snake_case
names in `FIELDS`, or the API's own PascalCase names (`ModelUrl`, `ClothesType`, ...), compared
case-insensitively. CSV may be UTF-8 with or without a BOM, delimited by comma, semicolon or
tab (detected from the header). Reading streams: memory does not grow with the file.
"""

from runner.manifest.ids import IdRegistry
from runner.manifest.keys import dedupe_key, derived_id
from runner.manifest.reading import (
    FORMATS,
    MAX_PROBLEMS,
    FlatRow,
    ManifestError,
    ManifestFormatError,
    ManifestReader,
    ManifestReport,
    ManifestStats,
    detect_format,
    file_sha256,
    validate_manifest,
)
from runner.manifest.rows import (
    FIELDS,
    REQUIRED_FIELDS,
    ManifestRow,
    Problem,
    build_request,
    validate_row,
)
from runner.manifest.values import (
    check_id,
    check_url,
    normalize_base_url,
    normalize_clothes_type,
)

__all__ = [
    "FIELDS",
    "FORMATS",
    "FlatRow",
    "MAX_PROBLEMS",
    "REQUIRED_FIELDS",
    "IdRegistry",
    "ManifestError",
    "ManifestFormatError",
    "ManifestReader",
    "ManifestReport",
    "ManifestRow",
    "ManifestStats",
    "Problem",
    "build_request",
    "check_id",
    "check_url",
    "dedupe_key",
    "derived_id",
    "detect_format",
    "file_sha256",
    "normalize_base_url",
    "normalize_clothes_type",
    "validate_manifest",
    "validate_row",
]

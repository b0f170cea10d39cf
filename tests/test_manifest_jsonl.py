"""Reading JSONL manifests: one object per line, API-shaped objects, broken lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.manifest import (
    ManifestFormatError,
    ManifestReader,
    ManifestRow,
    Problem,
    build_request,
    detect_format,
    validate_manifest,
)


def read(path: Path, **kw: str) -> list[ManifestRow | Problem]:
    with ManifestReader(path, **kw) as reader:
        return list(reader)


def write(tmp_path: Path, lines: list[str], name: str = "m.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def obj(**kw: object) -> str:
    base: dict[str, object] = {
        "model_url": "https://x/m.jpg",
        "clothes_url": "https://x/c.jpg",
        "clothes_type": "Dress",
    }
    base.update(kw)
    return json.dumps(base)


def test_api_shaped_objects_are_read_with_their_logo_param(tmp_path: Path) -> None:
    line = json.dumps(
        {
            "Id": "look-1",
            "ModelUrl": "https://x/m.jpg",
            "ClothesUrl": "https://x/c.jpg",
            "ClothesType": "Upper-body",
            "LogoAdd": 1,
            "LogoParam": {
                "LogoUrl": "https://x/l.png",
                "LogoRect": {"X": 1, "Y": 2, "Width": 3, "Height": 4},
            },
            "RspImgType": "base64",
        }
    )
    [row] = read(write(tmp_path, [line]))
    assert isinstance(row, ManifestRow)
    body = build_request(
        row.model_url, row.clothes_url, row.clothes_type, row.options, rsp_img_type_default="url"
    ).to_body()
    assert body["LogoParam"] == {
        "LogoUrl": "https://x/l.png",
        "LogoRect": {"X": 1, "Y": 2, "Width": 3, "Height": 4},
    }
    assert body["RspImgType"] == "base64" and body["LogoAdd"] == 1


def test_a_broken_line_is_reported_and_the_rest_is_read(tmp_path: Path) -> None:
    path = write(tmp_path, [obj(id="a"), '{"id": "b", "model_url": ', "", obj(id="c")])
    items = read(path)
    assert isinstance(items[0], ManifestRow)
    assert (
        isinstance(items[1], Problem)
        and items[1].line == 2
        and "not valid JSON" in items[1].message
    )
    assert isinstance(items[2], ManifestRow) and items[2].line == 4


def test_non_objects_unknown_and_repeated_keys_are_problems(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        ["[1, 2]", '"text"', obj(colour="red"), obj(ModelUrl="https://x/other.jpg")],
    )
    problems = [p for p in read(path) if isinstance(p, Problem)]
    assert [p.line for p in problems] == [1, 2, 3, 4]
    assert "JSON object" in problems[0].message
    assert "'colour'" in problems[2].message
    assert "repeats the model_url field" in problems[3].message


def test_nulls_are_unset_and_wrong_types_are_named(tmp_path: Path) -> None:
    path = write(tmp_path, [obj(id=None, logo_add=None), obj(model_url=12, logo_add="maybe")])
    first, second = read(path)
    assert isinstance(first, ManifestRow) and first.id_derived and first.logo_add is None
    assert isinstance(second, Problem)
    assert "model_url must be text" in second.message and "logo_add" in second.message


def test_numbers_as_ids_become_text(tmp_path: Path) -> None:
    [row] = read(write(tmp_path, [obj(id=42)]))
    assert isinstance(row, ManifestRow) and row.id == "42"


def test_deeply_nested_json_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    report = validate_manifest(write(tmp_path, ["[" * 100000 + "]" * 100000]))
    assert report.problem_count == 1


def test_format_comes_from_the_extension_or_is_given(tmp_path: Path) -> None:
    assert detect_format("a.jsonl") == "jsonl" and detect_format("a.NDJSON") == "jsonl"
    assert detect_format("a.CSV") == "csv" and detect_format("a.tsv") == "csv"
    assert detect_format("a.dat", "JSONL") == "jsonl"
    with pytest.raises(ManifestFormatError, match="--format"):
        detect_format("a.dat")
    path = write(tmp_path, [obj(id="z")], name="manifest.data")
    [row] = read(path, fmt="jsonl")
    assert isinstance(row, ManifestRow) and row.id == "z"

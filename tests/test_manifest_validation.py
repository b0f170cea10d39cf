"""Row rules: URLs, clothes types, ids as file names, logo options, derived ids, problem lists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runner.manifest import (
    ManifestReader,
    ManifestRow,
    Problem,
    build_request,
    dedupe_key,
    validate_manifest,
    validate_row,
)
from tests.store_fixtures import pairs, write_csv

BASE = {"model_url": "https://x/m.jpg", "clothes_url": "https://x/c.jpg", "clothes_type": "Dress"}


def check(base_url: str | None = None, **fields: Any) -> ManifestRow | Problem:
    return validate_row(7, {**BASE, **fields}, base_url)


def problem(**fields: Any) -> str:
    result = check(**fields)
    assert isinstance(result, Problem), result
    assert result.line == 7
    return result.message


@pytest.mark.parametrize(
    "url",
    [
        "ftp://x/m.jpg",
        "file:///etc/passwd",
        "data:image/png;base64,AAAA",
        "javascript:alert(1)",
        "C:\\images\\m.jpg",
        "https://",
        "https:///path",
        "https://x:99999/m.jpg",
        "http://a b/c.jpg",
    ],
)
def test_only_http_and_https_urls_are_accepted(url: str) -> None:
    assert "model_url" in problem(model_url=url)


@pytest.mark.parametrize(
    "url", ["https://x/m.jpg", "HTTP://X:8080/a/b.jpg?x=1#f", "http://127.0.0.1/m"]
)
def test_absolute_http_urls_pass_unchanged(url: str) -> None:
    row = check(model_url=url)
    assert isinstance(row, ManifestRow) and row.model_url == url


def test_relative_paths_need_a_base_url() -> None:
    assert "--base-url" in problem(model_url="models/m.jpg")
    for base in ("https://cdn.example/shoot", "https://cdn.example/shoot/"):
        row = check(base_url=base, model_url="models/m.jpg", logo_url="logo.png", logo_add=1)
        assert isinstance(row, ManifestRow)
        assert row.model_url == "https://cdn.example/shoot/models/m.jpg"
        assert row.logo_url == "https://cdn.example/shoot/logo.png"
        assert row.clothes_url == "https://x/c.jpg"  # absolute URLs are left alone


def test_a_bad_base_url_is_refused_before_reading(tmp_path: Path) -> None:
    from runner.manifest import ManifestFormatError

    path = write_csv(tmp_path / "m.csv", pairs(1))
    with pytest.raises(ManifestFormatError, match="base-url"):
        ManifestReader(path, base_url="ftp://x/")


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("Upper-body", "Upper-body"),
        ("upper_body", "Upper-body"),
        ("UPPER BODY", "Upper-body"),
        ("upperbody", "Upper-body"),
        (" lower-Body ", "Lower-body"),
        ("LOWER__BODY", "Lower-body"),
        ("dress", "Dress"),
        ("DRESS", "Dress"),
    ],
)
def test_clothes_type_is_normalised(given: str, canonical: str) -> None:
    row = check(clothes_type=given)
    assert isinstance(row, ManifestRow) and row.clothes_type == canonical


@pytest.mark.parametrize("given", ["shirt", "upper", "full-body", "", "Dress!"])
def test_unknown_clothes_types_are_refused(given: str) -> None:
    assert "clothes_type" in problem(clothes_type=given)


@pytest.mark.parametrize(
    "ident",
    [
        "a/b",
        "a\\b",
        "..",
        "x..y",
        ".hidden",
        "CON",
        "con.jpg",
        "LPT1",
        "nul",
        "ends.",
        "dot .",
        "a:b",
        "a*b",
        "a?b",
        'a"b',
        "a<b",
        "a|b",
        "tab\there",
        "x" * 101,
        "é" * 101,
    ],
)
def test_ids_unsafe_as_file_names_are_refused(ident: str) -> None:
    assert "id " in problem(id=ident)


@pytest.mark.parametrize(
    "ident", ["look-001", "SKU 123 (red)", "été_2024", "a.b.c", "x" * 100, "CONSOLE", "-dash"]
)
def test_ordinary_ids_are_kept(ident: str) -> None:
    row = check(id=ident)
    assert isinstance(row, ManifestRow) and row.id == ident and not row.id_derived


def test_cells_are_trimmed() -> None:
    row = check(id="  look-1 ", model_url=" https://x/m.jpg ", clothes_type=" Dress ")
    assert isinstance(row, ManifestRow)
    assert (row.id, row.model_url, row.clothes_type) == ("look-1", "https://x/m.jpg", "Dress")


def test_missing_ids_get_stable_derived_ids() -> None:
    a, b = check(), check()
    assert isinstance(a, ManifestRow) and isinstance(b, ManifestRow)
    assert a.id_derived and a.id == b.id and a.id.startswith("auto-")
    c = check(rsp_img_type="base64")
    assert isinstance(c, ManifestRow) and c.id != a.id  # the whole row names it
    assert c.dedupe_key == a.dedupe_key  # ... but it is the same picture


def test_dedupe_key_ignores_delivery_and_the_default_logo() -> None:
    key = dedupe_key("https://m", "https://c", "Dress", {})
    assert key == dedupe_key(
        "https://m", "https://c", "Dress", {"logo_add": 1, "rsp_img_type": "url"}
    )
    assert key != dedupe_key("https://m", "https://c", "Dress", {"logo_add": 0})
    assert key != dedupe_key("https://m", "https://c", "Upper-body", {})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"logo_url": "https://x/l.png", "logo_image": "aGVsbG8="}, "not both"),
        ({"logo_rect": "1,2,3,4"}, "needs logo_url or logo_image"),
        ({"logo_add": 0, "logo_url": "https://x/l.png"}, "logo_add is 0"),
        ({"logo_add": "2"}, "logo_add must be 0 or 1"),
        ({"logo_url": "https://x/l.png", "logo_rect": "1,2,3"}, "4 numbers"),
        ({"logo_url": "https://x/l.png", "logo_rect": "1,2,0,4"}, "Width and Height"),
        ({"logo_url": "https://x/l.png", "logo_rect": "-1,2,3,4"}, "X and Y"),
        ({"logo_url": "https://x/l.png", "logo_rect": "a,b,c,d"}, "whole number"),
        ({"logo_url": "https://x/l.png", "logo_rect": {"X": 1, "Y": 2, "W": 3, "H": 4}}, "keys"),
        ({"logo_image": "not base64!"}, "Base64"),
        ({"logo_url": "ftp://x/l.png"}, "logo_url"),
        ({"logo_param": {"LogoUrl": "https://x/l.png", "Colour": 1}}, "unknown member"),
        ({"logo_param": "{not json"}, "logo_param"),
        ({"rsp_img_type": "png"}, "rsp_img_type"),
    ],
)
def test_logo_options_must_be_well_formed(fields: dict[str, Any], message: str) -> None:
    assert message in problem(**fields)


@pytest.mark.parametrize(
    "rect",
    [
        "10,20,300,400",
        "10;20;300;400",
        " 10 20 300 400 ",
        "[10,20,300,400]",
        '{"x":10,"y":20,"width":300,"height":400}',
        [10, 20, 300, 400],
        {"X": 10, "Y": 20, "Width": 300, "Height": 400},
    ],
)
def test_logo_rect_forms(rect: Any) -> None:
    row = check(logo_image="aGVsbG8=", logo_rect=rect)
    assert isinstance(row, ManifestRow)
    assert row.options["logo_rect"] == {"x": 10, "y": 20, "width": 300, "height": 400}
    assert build_request(
        row.model_url, row.clothes_url, row.clothes_type, row.options, rsp_img_type_default="url"
    ).to_body()["LogoParam"]["LogoRect"] == {
        "X": 10,
        "Y": 20,
        "Width": 300,
        "Height": 400,
    }


def test_several_faults_of_one_row_are_listed_together() -> None:
    message = problem(model_url="ftp://x", clothes_type="hat", id="a/b")
    assert "model_url" in message and "clothes_type" in message and "id 'a/b'" in message


def test_ids_must_be_unique_in_the_manifest_case_insensitively(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "m.csv", [*pairs(3), ["R1", "https://y/m", "https://y/c", "Dress"]])
    with ManifestReader(path) as reader:
        items = list(reader)
    [dup] = [p for p in items if isinstance(p, Problem)]
    assert dup.line == 5 and "already used on line 3" in dup.message and "'r1'" in dup.message


def test_identical_rows_without_ids_are_counted_once(tmp_path: Path) -> None:
    row = ["", "https://x/m.jpg", "https://x/c.jpg", "Dress"]
    report = validate_manifest(write_csv(tmp_path / "m.csv", [row, row, row]))
    assert report.ok and report.stats.rows == 1 and report.stats.duplicates_merged == 2


def test_only_the_first_50_problems_are_listed_with_a_count(tmp_path: Path) -> None:
    bad = [[f"b{i}", "ftp://x", "https://x/c.jpg", "Dress"] for i in range(120)]
    report = validate_manifest(write_csv(tmp_path / "m.csv", [*pairs(5), *bad]))
    assert report.problem_count == 120
    assert len(report.problems) == 50
    assert [p.line for p in report.problems] == list(range(7, 57))
    assert report.stats.rows == 5

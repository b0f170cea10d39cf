"""Reading CSV manifests: encodings, delimiters, quoting, headers, line numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.manifest import ManifestError, ManifestReader, ManifestRow, Problem, validate_manifest

HEADER = "id,model_url,clothes_url,clothes_type\n"


def read(path: Path, **kw: str) -> list[ManifestRow | Problem]:
    with ManifestReader(path, **kw) as reader:
        return list(reader)


def write(tmp_path: Path, data: str | bytes, name: str = "m.csv") -> Path:
    path = tmp_path / name
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    return path


def test_utf8_bom_is_ignored(tmp_path: Path) -> None:
    path = write(
        tmp_path, b"\xef\xbb\xbf" + (HEADER + "a,https://x/m.jpg,https://x/c.jpg,Dress\n").encode()
    )
    [row] = read(path)
    assert isinstance(row, ManifestRow) and row.id == "a"


@pytest.mark.parametrize("delimiter", [";", "\t", ","])
def test_delimiter_is_detected_from_the_header(tmp_path: Path, delimiter: str) -> None:
    text = (
        delimiter.join(["id", "model_url", "clothes_url", "clothes_type", "logo_rect", "logo_url"])
        + "\r\n"
        + delimiter.join(
            [
                "a",
                "https://x/m.jpg",
                "https://x/c.jpg",
                "Upper-body",
                '"1,2,30,40"',
                "https://x/l.png",
            ]
        )
        + "\r\n"
    )
    with ManifestReader(write(tmp_path, text)) as reader:
        [row] = list(reader)
        assert reader.stats.delimiter == delimiter
    assert isinstance(row, ManifestRow)
    assert row.logo_rect is not None and row.logo_rect.width == 30
    assert row.logo_url == "https://x/l.png"


def test_semicolons_with_a_bom_as_excel_writes_them(tmp_path: Path) -> None:
    text = (
        "\ufeffID;ModelUrl;ClothesUrl;ClothesType\r\nx1;https://x/m.jpg;https://x/c.jpg;dress\r\n"
    )
    [row] = read(write(tmp_path, text))
    assert isinstance(row, ManifestRow)
    assert (row.id, row.clothes_type) == ("x1", "Dress")


def test_quoted_commas_and_newlines_inside_fields_keep_line_numbers(tmp_path: Path) -> None:
    text = (
        "id,model_url,clothes_url,clothes_type,logo_rect\n"
        'a,"https://x/m.jpg?crop=1,2",https://x/c.jpg,Dress,"1,2,3,4"\n'
        '"b\nwith newline",https://x/m.jpg,https://x/c.jpg,Dress,\n'
        'c,https://x/m.jpg,https://x/c.jpg,"Lower,body",\n'
        "d,https://x/m.jpg,https://x/c.jpg,Dress,\n"
    )
    items = read(write(tmp_path, text))
    assert isinstance(items[0], Problem) and "logo_rect needs logo_url" in items[0].message
    text = text.replace(",logo_rect\n", ",LogoAdd\n").replace('"1,2,3,4"', "1")
    items = read(write(tmp_path, text))
    assert isinstance(items[0], ManifestRow) and items[0].model_url == "https://x/m.jpg?crop=1,2"
    assert isinstance(items[1], Problem) and items[1].line == 3
    assert "control characters" in items[1].message
    assert isinstance(items[2], Problem) and items[2].line == 5  # the record after a 2-line one
    assert "clothes_type" in items[2].message
    assert isinstance(items[3], ManifestRow) and items[3].line == 6


def test_column_names_are_case_insensitive_and_api_names_are_aliases(tmp_path: Path) -> None:
    text = (
        "Id,MODEL_URL,ClothesUrl,clothes type,LogoAdd,RspImgType\n"
        "a,https://x/m.jpg,https://x/c.jpg,DRESS,0,URL\n"
    )
    [row] = read(write(tmp_path, text))
    assert isinstance(row, ManifestRow)
    assert (row.logo_add, row.rsp_img_type) == (0, "url")


def test_unknown_columns_are_an_error_naming_them(tmp_path: Path) -> None:
    path = write(tmp_path, "id,model_url,clothes_url,clothes_type,colour,Size\na,b,c,d,e,f\n")
    with pytest.raises(ManifestError) as err:
        read(path)
    assert err.value.problems[0].line == 1
    assert "'colour'" in str(err.value) and "'Size'" in str(err.value)
    report = validate_manifest(path)
    assert not report.ok and "colour" in report.problems[0].message


def test_missing_and_repeated_columns_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="missing required column clothes_type"):
        read(write(tmp_path, "id,model_url,clothes_url\n"))
    with pytest.raises(ManifestError, match="repeats the model_url column"):
        read(write(tmp_path, "model_url,ModelUrl,clothes_url,clothes_type\n"))


def test_wrong_number_of_fields_is_reported_per_row(tmp_path: Path) -> None:
    text = (
        HEADER
        + "a,https://x/m.jpg,https://x/c.jpg\nb,https://x/m.jpg,https://x/c.jpg,Dress,extra\n"
    )
    items = read(write(tmp_path, text))
    assert [(p.line, "fields" in p.message) for p in items if isinstance(p, Problem)] == [
        (2, True),
        (3, True),
    ]


def test_blank_lines_and_empty_rows_are_skipped(tmp_path: Path) -> None:
    text = "\n" + HEADER + "\n,,,\na,https://x/m.jpg,https://x/c.jpg,Dress\n\n"
    [row] = read(write(tmp_path, text))
    assert isinstance(row, ManifestRow) and row.line == 5


def test_invalid_utf8_is_reported_with_its_line_and_reading_goes_on(tmp_path: Path) -> None:
    data = (
        HEADER.encode()
        + b"a,https://x/m\xff.jpg,https://x/c.jpg,Dress\n"
        + (b"b,https://x/m.jpg,https://x/c.jpg,Dress\n")
    )
    items = read(write(tmp_path, data))
    assert isinstance(items[0], Problem) and items[0].line == 2 and "UTF-8" in items[0].message
    assert isinstance(items[1], ManifestRow) and items[1].id == "b"


def test_utf16_is_refused_with_a_hint(tmp_path: Path) -> None:
    path = write(tmp_path, (HEADER + "a,https://x/m.jpg,https://x/c.jpg,Dress\n").encode("utf-16"))
    with pytest.raises(ManifestError, match="UTF-16"):
        read(path)


def test_empty_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="empty"):
        read(write(tmp_path, ""))


def test_a_file_with_only_a_header_has_no_rows(tmp_path: Path) -> None:
    report = validate_manifest(write(tmp_path, HEADER))
    assert report.ok and report.stats.rows == 0


def test_unclosed_quote_does_not_swallow_memory_or_crash(tmp_path: Path) -> None:
    text = (
        HEADER
        + 'a,"https://x/m.jpg,https://x/c.jpg,Dress\n'
        + "b,https://x/m.jpg,https://x/c.jpg,Dress\n" * 3
    )
    report = validate_manifest(write(tmp_path, text))
    assert not report.ok
    assert report.problems[0].line == 2


def test_sha256_and_size_cover_the_whole_file(tmp_path: Path) -> None:
    import hashlib

    data = (HEADER + "a,https://x/m.jpg,https://x/c.jpg,Dress\n").encode()
    path = write(tmp_path, b"\xef\xbb\xbf" + data)
    with ManifestReader(path) as reader:
        list(reader)
    assert reader.stats.sha256 == hashlib.sha256(b"\xef\xbb\xbf" + data).hexdigest()
    assert reader.stats.bytes_read == len(data) + 3

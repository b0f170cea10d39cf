"""Which manifest values are local files, objects in a bucket or URLs; and what a run with
bucket inputs does when it cannot use the bucket."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from click.testing import CliRunner

from runner.cli import cli
from runner.manifest import ManifestRow, Problem, validate_row
from runner.manifest.local import LocalFiles, reading_local_files
from tests.s3_support import MotoServer

BASE = {"model_url": "https://x/m.jpg", "clothes_url": "https://x/c.jpg", "clothes_type": "Dress"}


def check(base_url: str | None = None, **fields: Any) -> ManifestRow | Problem:
    return validate_row(2, {**BASE, **fields}, base_url)


def test_paths_are_local_files_without_base_url_and_web_paths_with_it(tmp_path: Path) -> None:
    photo = tmp_path / "shoot" / "m 1.jpg"  # a space, as studio names have
    photo.parent.mkdir()
    photo.write_bytes(b"jpeg")
    with reading_local_files(LocalFiles(root=tmp_path)) as local:
        for value in ("shoot/m 1.jpg", "./shoot/../shoot/m 1.jpg", str(photo), photo.as_uri()):
            row = check(model_url=value)
            assert isinstance(row, ManifestRow), row
            assert row.model_url == photo.as_uri()
        # With --base-url a path is on that server, as before; file:// is still a local file.
        row = check("https://cdn.test/cat/", model_url="shoot/m.jpg", clothes_url=photo.as_uri())
        assert isinstance(row, ManifestRow)
        assert row.model_url == "https://cdn.test/cat/shoot/m.jpg"
        assert row.clothes_url == photo.as_uri()
        missing = check(model_url="shoot/gone.jpg")
        assert isinstance(missing, Problem) and "gone.jpg does not exist" in missing.message
        folder = check(model_url="shoot")
        assert isinstance(folder, Problem) and "is not a file" in folder.message
    assert local.seen == {photo: {"model_url", "clothes_url"}}


def test_uploaded_files_become_their_objects(tmp_path: Path) -> None:
    photo = tmp_path / "m.jpg"
    photo.write_bytes(b"jpeg")
    local = LocalFiles(root=tmp_path, refs={photo: "s3://b-1/in/ab.jpg"}, unmapped="changed")
    with reading_local_files(local):
        row = check(model_url="m.jpg", clothes_url="s3://b-1/in/cd.jpg")
        assert isinstance(row, ManifestRow)
        assert (row.model_url, row.clothes_url) == ("s3://b-1/in/ab.jpg", "s3://b-1/in/cd.jpg")
        (tmp_path / "new.jpg").write_bytes(b"jpeg")
        late = check(model_url="new.jpg")
        assert isinstance(late, Problem) and "new.jpg changed" in late.message


def test_bucket_refs_are_checked_and_local_files_need_upload() -> None:
    assert isinstance(check(model_url="s3://b-1/in/m.jpg"), ManifestRow)
    for bad in ("s3://b-1/", "s3://B_1/m.jpg", "s3://b-1/m.jpg?x=1"):
        result = check(model_url=bad)
        assert isinstance(result, Problem), bad
    refused = check(model_url="/srv/studio/m.jpg")
    assert isinstance(refused, Problem)
    assert "--upload s3://BUCKET/PREFIX" in refused.message


def test_images_dir_and_base_url_together_are_a_usage_error(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("model_url,clothes_url,clothes_type\na.jpg,b.jpg,Dress\n")
    args = ["validate", str(manifest), "--images-dir", str(tmp_path), "--base-url", "http://x/"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert "give one" in result.output


def test_run_without_bucket_credentials_stops_before_any_call(
    tmp_path: Path, moto_server: MotoServer
) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("model_url,clothes_url,clothes_type\ns3://b-1/m.jpg,s3://b-1/c.jpg,Dress\n")
    db = str(tmp_path / "q.db")
    assert CliRunner().invoke(cli, ["submit", str(manifest), "--db", db]).exit_code == 0
    env: dict[str, str | None] = {**moto_server.env({})}
    env.update(
        AWS_ACCESS_KEY_ID=None,
        AWS_SECRET_ACCESS_KEY=None,
        TENCENTCLOUD_SECRET_ID="AKIDx",
        TENCENTCLOUD_SECRET_KEY="k",
    )
    args = ["run", "--db", db, "--out", str(tmp_path / "out"), "--endpoint", "http://127.0.0.1:9"]
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 2, result.output
    assert "no credentials for the store" in result.stderr
    assert "Nothing was called" in result.stderr

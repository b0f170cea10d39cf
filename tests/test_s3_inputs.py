"""Local photos in, through a bucket: `submit --upload s3://…` uploads each distinct file once,
`run` hands the API presigned URLs made when it claims each job, and no secret or signature
is left behind. A real S3-compatible server (moto, on 127.0.0.1), the real fake ChangeClothes
server (which fetches the inputs by URL, as the service does), the real command line."""

from __future__ import annotations

import csv
import hashlib
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import anyio
import pytest
from click.testing import CliRunner

from runner.api.errors import ApiError
from runner.cli import cli
from runner.fake import serve_fake
from runner.objects import BucketLocation
from runner.objects.client import SharedObjectStore, open_object_store
from runner.objects.errors import EXTRA_HINT
from runner.scheduler.inputs import inputs_for_run, scrub, scrub_error
from runner.store import open_store
from runner.store.submit import submit_manifest
from tests.cli_run import changeclothes
from tests.s3_support import SECRET_KEY, MotoServer, expiry_checking_front
from tests.subprocess_support import runner_env

pytestmark = pytest.mark.anyio

SAMPLES = Path(__file__).resolve().parent.parent / "sample_manifests" / "images"
BUCKET = "studio-photos"
TTL = 2  # --presign-ttl, seconds: short, so a wait longer than it proves when URLs are made


def studio(tmp_path: Path) -> Path:
    """A studio folder: the sample photos and a manifest naming them three ways (relative,
    absolute, file://); one photo twice, once under a second name."""
    folder = tmp_path / "studio"
    shutil.copytree(SAMPLES, folder / "images")
    images = folder / "images"
    shutil.copy(images / "model-01.jpg", images / "model-01-copy.jpg")
    rows = [
        ["look-1", "images/model-01.jpg", "images/clothes-01.jpg", "Upper-body"],
        ["look-2", str(images / "model-02.jpg"), "images/clothes-02.jpg", "Lower-body"],
        ["look-3", (images / "model-03.jpg").as_uri(), "images/clothes-03.jpg", "Dress"]
        + ["images/logo.png"],  # a logo: any size is fine
        ["look-4", "images/model-01-copy.jpg", "./images/clothes-04.jpg", "Upper-body"],
    ]
    write(folder / "catalog.csv", rows)
    return folder


def write(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["id", "model_url", "clothes_url", "clothes_type", "logo_url"])
        out.writerows(row + [""] * (5 - len(row)) for row in rows)
    return path


def puts(moto: MotoServer) -> list[str]:
    return [path for method, path, _ in moto.requests() if method == "PUT" and "/" in path[1:]]


async def cli_process(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    done = await anyio.run_process([*changeclothes(), *args], env=env, cwd=cwd, check=False)
    return done.returncode, done.stdout.decode() + done.stderr.decode()


async def cli_in_thread(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """The command in this process (a worker thread, its own event loop): cheaper than a
    process, while this test's loop keeps serving the fake and the front."""

    def invoke() -> tuple[int, str]:
        result = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
        return result.exit_code, result.output

    return await anyio.to_thread.run_sync(invoke)


async def test_local_photos_uploaded_once_then_presigned_when_claimed(
    tmp_path: Path, moto_server: MotoServer
) -> None:
    """End to end: submit --upload, submit again (nothing uploaded), a changed manifest (only
    the new photo), then run after a wait longer than --presign-ttl: every job done, the fake
    fetched every input through a presigned URL made by `run` (a URL made at submit time would
    have expired, and the front refuses expired URLs), and no secret or signature anywhere."""
    moto_server.make_bucket(BUCKET)
    folder = studio(tmp_path)
    db, out = str(tmp_path / "queue.db"), tmp_path / "results"
    upload = f"s3://{BUCKET}/catalog"
    async with expiry_checking_front(moto_server) as front, serve_fake(latency=0.2) as server:
        env = moto_server.env(runner_env(server))
        env["CHANGECLOTHES_S3_ENDPOINT"] = front.endpoint
        logs: list[str] = []

        code, text = await cli_process(
            ["-vv", "submit", "catalog.csv", "--db", db, "--upload", upload], env, folder
        )
        logs.append(text)
        assert code == 0, text
        assert "9 files (8 distinct)" in text and "8 uploaded" in text and "4 queued" in text
        stored = moto_server.objects(BUCKET, "catalog/")
        assert len(stored) == len(puts(moto_server)) == 8  # model-01 under two names: once
        assert sum(key.endswith(".png") for key in stored) == 1  # named by its kind
        for name in ("model-01.jpg", "clothes-04.jpg"):
            digest = hashlib.sha256((folder / "images" / name).read_bytes()).hexdigest()
            assert f"catalog/{digest}.jpg" in stored

        again = ["submit", str(folder / "catalog.csv"), "--db", db, "--batch", "again"]
        code, text = await cli_in_thread([*again, "--upload", upload], env)
        logs.append(text)
        assert code == 0, text
        assert "0 uploaded" in text and "8 already there" in text
        assert len(puts(moto_server)) == 8, "the same files again upload nothing"

        changed = write(
            folder / "more.csv",
            [
                ["look-1", "images/model-01.jpg", "images/clothes-01.jpg", "Upper-body"],
                ["look-5", "images/model-04.jpg", "images/clothes-01.jpg", "Dress"],
            ],
        )
        code, text = await cli_in_thread(
            ["submit", str(changed), "--db", db, "--upload", upload, "--batch", "catalog"], env
        )
        logs.append(text)
        assert code == 0, text
        assert "1 uploaded" in text and len(puts(moto_server)) == 9

        # Longer than --presign-ttl: a URL made before now would be refused by the front.
        submitted = datetime.now(UTC).replace(microsecond=0)
        await anyio.sleep(TTL + 1)
        code, text = await cli_process(
            ["-vv", "run", "--db", db, "--out", str(out), "--endpoint", server.url]
            + ["--presign-ttl", f"{TTL}s"],
            env,
            tmp_path,
        )
        logs.append(text)
        assert code == 0, text
        stats = server.stats()

        code, text = await cli_in_thread(
            ["export", "--db", db, "--output", str(tmp_path / "export.csv")], env
        )
        logs.append(text)
        assert code == 0, text

    assert stats["calls"] == {"OK": 5}, stats["calls"]
    assert (front.refused, front.passed) == (0, 11)  # 5 models, 5 garments, 1 logo
    for result in stats["results"]:
        for url in (result["model_url"], result["clothes_url"]):
            assert url.startswith(f"{front.endpoint}/{BUCKET}/catalog/"), url
            query = parse_qs(urlsplit(url).query)
            assert query["X-Amz-Expires"] == [str(TTL)]
            signed_at = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ")
            assert signed_at.replace(tzinfo=UTC) > submitted, "made by run, not by submit"
    assert sorted(p.name for p in (out / "catalog").iterdir()) == [
        f"look-{i}.jpg" for i in range(1, 6)
    ]

    kept = [Path(db), Path(db + "-wal"), tmp_path / "export.csv", *out.glob("*.json")]
    texts = [p.read_bytes().decode("latin-1") for p in kept if p.exists()] + logs
    everything = "\n".join(texts)
    assert f"s3://{BUCKET}/catalog/" in everything  # the jobs record the objects...
    for secret in (SECRET_KEY, env["TENCENTCLOUD_SECRET_KEY"], "X-Amz-Signature", "Signature="):
        assert secret not in everything, f"{secret!r} was written down"  # ...never a signature


async def test_a_presigned_url_past_its_window_is_refused_by_the_store(
    moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto checks no expiry; the expiry-checking front (tests/s3_support.py) before it does,
    as S3 and COS do: a URL older than its window is refused with 403, a fresh one served."""
    for key, value in moto_server.env({}).items():
        monkeypatch.setenv(key, value)
    moto_server.make_bucket(BUCKET)
    ref = BucketLocation.parse(f"s3://{BUCKET}/in").ref("photo.jpg")
    async with expiry_checking_front(moto_server) as front:
        config = moto_server.config.__class__(endpoint=front.endpoint, region="us-east-1")
        async with open_object_store(config) as store:
            await store.put_bytes(ref, b"photo", content_type="image/jpeg")
            short = await store.presign_get(ref, 1)
            await anyio.sleep(2.1)  # longer than its window: time only moves on
            fresh = await store.presign_get(ref, 60)
        async with aiohttp.ClientSession() as http:
            async with http.get(short) as reply:
                assert reply.status == 403
                assert b"Request has expired" in await reply.read()
            async with http.get(fresh) as reply:
                assert reply.status == 200 and await reply.read() == b"photo"
    assert (front.refused, front.passed) == (1, 1)


async def test_a_bucket_job_queued_after_the_run_started_is_presigned_when_claimed(
    tmp_path: Path, moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that started on plain URLs only (no bucket client opened then) still presigns a
    bucket job queued later (`submit --upload` while it runs) when it claims it, instead of
    halting the run."""
    for key, value in moto_server.env({}).items():
        monkeypatch.setenv(key, value)
    moto_server.make_bucket(BUCKET)
    model, clothes = (BucketLocation.parse(f"s3://{BUCKET}/in").ref(n) for n in ("m.jpg", "c.jpg"))
    objects = SharedObjectStore(moto_server.config)
    store = await open_store(str(tmp_path / "q.db"))
    try:
        plain = write(
            tmp_path / "plain.csv",
            [["p", "http://127.0.0.1:9/m.jpg", "http://127.0.0.1:9/c.jpg", "Dress"]],
        )
        assert not (await submit_manifest(store, plain, batch="b")).refused
        inputs = await inputs_for_run(store, objects, 60, None)  # nothing in a bucket yet
        claimed = await store.claim_next(datetime.now(UTC), "w1")
        assert claimed is not None and claimed.external_id == "p"
        request = await inputs.request_for(claimed, "url")
        assert request.model_url == "http://127.0.0.1:9/m.jpg"

        later = write(tmp_path / "later.csv", [["u", str(model), str(clothes), "Dress"]])
        assert not (await submit_manifest(store, later, batch="b")).refused
        client = await objects.get()
        await client.put_bytes(model, b"model", content_type="image/jpeg")
        await client.put_bytes(clothes, b"clothes", content_type="image/jpeg")
        claimed = await store.claim_next(datetime.now(UTC), "w1")
        assert claimed is not None and claimed.external_id == "u"
        request = await inputs.request_for(claimed, "url")
        async with aiohttp.ClientSession() as http:
            for url, body in ((request.model_url, b"model"), (request.clothes_url, b"clothes")):
                assert "X-Amz-Signature=" in url
                async with http.get(url) as reply:  # the store serves it: a real signed URL
                    assert reply.status == 200 and await reply.read() == body
    finally:
        await store.close()
        await objects.aclose()


def test_a_local_path_without_upload_is_a_row_error_that_says_how(tmp_path: Path) -> None:
    folder = studio(tmp_path)
    result = CliRunner().invoke(
        cli, ["submit", str(folder / "catalog.csv"), "--db", str(tmp_path / "q.db")]
    )
    assert result.exit_code == 1
    assert "line 2: model_url 'images/model-01.jpg'" in result.stderr
    assert "--upload s3://BUCKET/PREFIX" in result.stderr
    assert "nothing was queued" in result.stderr


def test_a_photo_the_api_would_refuse_is_not_uploaded(
    tmp_path: Path, moto_server: MotoServer
) -> None:
    moto_server.make_bucket(BUCKET)
    folder = studio(tmp_path)
    manifest = write(
        folder / "bad.csv",
        [
            ["ok", "images/model-01.jpg", "images/clothes-01.jpg", "Dress"],
            ["tiny", "images/tiny-01.jpg", "images/clothes-01.jpg", "Dress"],
            ["gone", "images/nowhere.jpg", "images/clothes-01.jpg", "Dress"],
        ],
    )
    args = ["submit", str(manifest), "--db", str(tmp_path / "q.db")]
    args += ["--upload", f"s3://{BUCKET}/in"]
    env = moto_server.env({})
    refused = CliRunner().invoke(cli, args, env=env)
    assert refused.exit_code == 1, refused.output
    assert "nothing was uploaded or queued" in refused.stderr
    assert "line 3: model_url 'images/tiny-01.jpg'" in refused.stderr
    assert "480x640 px" in refused.stderr
    assert "line 4: model_url 'images/nowhere.jpg'" in refused.stderr
    assert "does not exist" in refused.stderr
    assert puts(moto_server) == []

    skipped = CliRunner().invoke(cli, [*args, "--skip-invalid"], env=env)
    assert skipped.exit_code == 0, skipped.output
    assert "2 uploaded" in skipped.stdout and "1 queued" in skipped.stdout
    assert len(puts(moto_server)) == 2  # the tiny photo is not in the bucket


def test_bucket_errors_are_one_sentence_and_queue_nothing(
    tmp_path: Path, moto_server: MotoServer
) -> None:
    folder = studio(tmp_path)
    db = str(tmp_path / "q.db")
    args = ["submit", str(folder / "catalog.csv"), "--db", db]
    env: dict[str, str | None] = {**moto_server.env({})}
    missing = CliRunner().invoke(cli, [*args, "--upload", "s3://no-such-bucket/in"], env=env)
    assert missing.exit_code == 2
    assert "NoSuchBucket: the bucket does not exist; nothing was queued." in missing.stderr

    env.update(AWS_ACCESS_KEY_ID=None, AWS_SECRET_ACCESS_KEY=None)
    nokeys = CliRunner().invoke(cli, [*args, "--upload", f"s3://{BUCKET}/in"], env=env)
    assert nokeys.exit_code == 2
    assert "no credentials for the store" in nokeys.stderr
    assert "Traceback" not in nokeys.output
    assert not Path(db).exists(), "nothing queued: the queue was not even opened"


def test_validate_reads_local_photos_and_counts_bucket_inputs(tmp_path: Path) -> None:
    folder = studio(tmp_path)
    manifest = write(
        folder / "mixed.csv",
        [
            ["a", "images/model-01.jpg", "s3://studio-photos/in/ab.jpg", "Dress"],
            ["b", "images/tiny-01.jpg", "images/clothes-02.jpg", "Dress"],
        ],
    )
    args = ["validate", str(manifest), "--db", str(tmp_path / "q.db")]
    as_submit = CliRunner().invoke(cli, args)  # local files need --upload, as for submit
    assert as_submit.exit_code == 1 and "--upload s3://BUCKET/PREFIX" in as_submit.stderr
    result = CliRunner().invoke(cli, [*args, "--upload", "s3://studio-photos/in"])
    assert result.exit_code == 1, result.output
    assert "1 images in a bucket (s3://) not fetched" in result.stdout
    assert "line 3 (id b): model_url 480x640 px" in result.stderr


@pytest.mark.parametrize("command", ["submit", "run"])
def test_missing_bucket_support_says_how_to_install_it(
    tmp_path: Path, moto_server: MotoServer, command: str
) -> None:
    """Without the optional extra (its import blocked in the child), one sentence and exit 2."""
    folder = studio(tmp_path)
    db = str(tmp_path / "q.db")
    env = moto_server.env({})
    env["TENCENTCLOUD_SECRET_ID"], env["TENCENTCLOUD_SECRET_KEY"] = "AKIDx", "key"
    if command == "run":  # a queue that reads from a bucket: written directly, no upload
        write(folder / "direct.csv", [["a", "s3://b-1/in/m.jpg", "s3://b-1/in/c.jpg", "Dress"]])
        queued = CliRunner().invoke(cli, ["submit", str(folder / "direct.csv"), "--db", db])
        assert queued.exit_code == 0, queued.output
        args = ["run", "--db", db, "--out", str(tmp_path / "out")]
    else:
        args = ["submit", str(folder / "catalog.csv"), "--db", db, "--upload", "s3://b-1/in"]
    blocked = (
        "import sys; sys.modules['aiobotocore'] = None; "
        f"sys.argv = ['changeclothes', *{args!r}]; "
        "from runner.cli import main; main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", blocked], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stderr
    message = done.stderr.strip()
    assert EXTRA_HINT in message and len(message.splitlines()) == 1, message


def test_scrub_removes_signatures_from_echoed_urls() -> None:
    text = (
        "could not fetch http://127.0.0.1:9/b/k.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKID%2Fx&X-Amz-Signature=abc123 (HTTP 403)"
    )
    assert scrub(text) == "could not fetch http://127.0.0.1:9/b/k.jpg?… (HTTP 403)"
    assert scrub("plain https://x/y.jpg?w=1") == "plain https://x/y.jpg?w=1"
    err = scrub_error(ApiError("FailedOperation.ImageDownloadError", text, "req-1"))
    assert "X-Amz" not in err.message and "X-Amz" not in str(err)
    assert str(err).endswith("(RequestId req-1)")


@pytest.mark.parametrize(
    "echo",
    [
        # the whole URL percent-encoded, as in a query parameter of another URL
        "could not fetch http%3A%2F%2Fh%2Fb%2Fk.jpg%3FX-Amz-Algorithm%3DAWS4-HMAC-SHA256"
        "%26X-Amz-Credential%3DAKIDSECRET%252Fx%26X-Amz-Security-Token%3DTOKSECRET"
        "%26X-Amz-Signature%3DSIGSECRET%26X-Amz-Expires%3D60 (HTTP 403)",
        # only the query, no `?`, in any case
        "bad query x-amz-credential=AKIDSECRET%2Fx&X-AMZ-SIGNATURE=SIGSECRET&"
        "X-Amz-Security-Token=TOKSECRET",
        # quoted, or followed by a space
        "url 'X-Amz-Signature=SIGSECRET' and \"X-Amz-Credential=AKIDSECRET\" then "
        "X-Amz-Security-Token%3dTOKSECRET done",
    ],
)
def test_scrub_removes_signatures_echoed_encoded_or_without_the_url(echo: str) -> None:
    scrubbed = scrub(echo)
    for secret in ("SIGSECRET", "AKIDSECRET", "TOKSECRET"):
        assert secret not in scrubbed, scrubbed
    assert scrubbed.split()[0] == echo.split()[0]  # the rest of the message stays
    if "%26X-Amz-Expires" in echo:
        assert "%26X-Amz-Expires%3D60 (HTTP 403)" in scrubbed  # a value ends at `%26`
    err = scrub_error(ApiError("FailedOperation.ImageDownloadError", echo, "req-2"))
    assert "SIGSECRET" not in err.message and "SIGSECRET" not in str(err)

"""Installable anywhere: the wheel, in a fresh virtualenv, away from the checkout, runs the
demo and serves the sample images."""

from __future__ import annotations

import fcntl
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """A fresh venv with only the built wheel (and its dependencies) installed: its bin/.

    Built once per test run, however many pytest-xdist workers run these tests: the build
    and install take a core for a minute, which the other tests of a 2-core machine feel.
    The first worker builds under a file lock in the run's shared folder; the others wait
    for it and use the same venv (the tests only read it)."""
    base = tmp_path_factory.getbasetemp()
    shared = base if worker_id == "master" else base.parent
    work = shared / "wheel"
    ready = work / "ready"
    with (shared / "wheel.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not ready.exists():
            _build_and_install(work)
            ready.touch()
    return work / "venv" / "bin"


def _build_and_install(work: Path) -> None:
    work.mkdir(exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(work)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = work.glob("changeclothes_runner-*.whl")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
        check=True,
        capture_output=True,
        timeout=900,
    )


def _clean_env(home: Path) -> dict[str, str]:
    # No PYTHONPATH, no credentials, no settings: only what the wheel brought.
    return {"PATH": "/usr/bin:/bin", "HOME": str(home)}


def test_runner_is_imported_from_the_venv_not_the_checkout(installed: Path, tmp_path: Path) -> None:
    out = subprocess.run(
        [str(installed / "python"), "-c", "import runner; print(runner.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env=_clean_env(tmp_path),
        timeout=60,
    ).stdout
    assert Path(out.strip()).is_relative_to(installed.parent)


def test_demo_runs_from_the_wheel(installed: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(installed / "changeclothes"), "demo", "--workdir", "d", "--latency", "0"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_clean_env(tmp_path),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    images = list((tmp_path / "d" / "results" / "catalog").glob("*.jpg"))
    assert len(images) >= 12
    assert (tmp_path / "d" / "results" / "report.html").is_file()


def test_fake_server_serves_the_sample_images_from_the_wheel(
    installed: Path, tmp_path: Path
) -> None:
    proc = subprocess.Popen(
        [str(installed / "changeclothes"), "fake-server", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=_clean_env(tmp_path),
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        match = re.search(r"images: (http://127\.0\.0\.1:\d+/images/)", first)
        assert match, first
        with urllib.request.urlopen(match.group(1) + "model-01.jpg", timeout=30) as resp:
            assert resp.status == 200
            assert resp.read(3) == b"\xff\xd8\xff", "a JPEG"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()

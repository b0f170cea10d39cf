"""The layers stay apart: the store and the manifest reader know no HTTP, the API boundary
knows no database, and the public surface of `runner.api` is whole."""

from __future__ import annotations

import subprocess
import sys

import pytest

import runner.api


def _modules_after_import(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return set(out.stdout.split())


@pytest.mark.parametrize("module", ["runner.store", "runner.manifest"])
def test_store_and_manifest_do_not_import_http(module: str) -> None:
    loaded = _modules_after_import(module)
    assert "aiohttp" not in loaded
    assert "runner.api.client" not in loaded
    assert "runner.objects.client" not in loaded  # a manifest may name s3:// objects: no client


def test_the_bucket_extra_is_imported_only_when_a_bucket_is_used() -> None:
    loaded = _modules_after_import("runner.cli")
    assert not {m for m in loaded if m.startswith(("aiobotocore", "botocore"))}


def test_api_does_not_import_the_database() -> None:
    loaded = _modules_after_import("runner.api.client")
    assert not {m for m in loaded if m.startswith(("sqlalchemy", "runner.store"))}


def test_api_public_surface_is_whole() -> None:
    for name in runner.api.__all__:
        assert getattr(runner.api, name) is not None
    assert runner.api.ChangeClothesClient.__module__ == "runner.api.client"

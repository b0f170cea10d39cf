"""The report's advice for input-image errors says what actually fixes them."""

from __future__ import annotations

from pathlib import Path

from runner.report import advice_for

ROOT = Path(__file__).resolve().parents[1]


def test_download_error_points_at_the_url_not_at_retrying() -> None:
    advice = advice_for("FailedOperation.ImageDownloadError")
    assert "URL" in advice and "validate" in advice
    assert "changeclothes retry" not in advice


def test_resolution_advice_states_the_real_limits() -> None:
    advice = advice_for("FailedOperation.ImageResolutionExceed")
    assert "512" in advice and "3000" in advice


def test_sample_readme_base_url_matches_the_sample_paths() -> None:
    text = (ROOT / "sample_manifests" / "README.md").read_text()
    assert "8765/images/`" not in text
    assert "`http://127.0.0.1:8765/`" in text

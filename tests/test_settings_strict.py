"""Settings: a typo is an error, every variable is documented, and `config show` says where
each value came from."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from runner.cli import cli
from runner.cli.settings import envvar_names

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
SECRET = "Sk-settings-secret-77aa"
CLEAN_ENV: dict[str, str | None] = {
    name: None
    for name in (
        "TENCENTCLOUD_SECRET_ID",
        "TENCENTCLOUD_SECRET_KEY",
        "TENCENTCLOUD_REGION",
        "CHANGECLOTHES_CONFIG",
        "CHANGECLOTHES_DB",
        "CHANGECLOTHES_CONCURRENCY",
    )
}


def _invoke(args: list[str], **env: str) -> Result:
    return CliRunner().invoke(cli, args, env={**CLEAN_ENV, **env})


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("concurency = 2\n", "unknown setting 'concurency' (did you mean 'concurrency'?)"),
        ("[runn]\nconcurrency = 2\n", "unknown table 'runn' (did you mean 'run'?)"),
        ("[run]\nconcurency = 2\n", "unknown setting in [run]: 'concurency'"),
        ("[status]\nconcurrency = 2\n", "unknown setting in [status]: 'concurrency'"),
        ("[db.upgrad]\ndb = 'x.db'\n", "unknown table 'db.upgrad'"),
    ],
)
def test_unknown_keys_and_tables_name_file_and_key(in_tmp: Path, toml: str, expected: str) -> None:
    (in_tmp / "changeclothes.toml").write_text(toml)
    result = _invoke(["status"])
    assert result.exit_code == 2
    assert f"changeclothes.toml: {expected}" in result.output


def test_config_and_verbose_after_the_subcommand(in_tmp: Path) -> None:
    (in_tmp / "night.toml").write_text('db = "from-night.db"\n')
    result = _invoke(["status", "--config", "night.toml", "-vv"])
    # `status` names the database it looked for when there is none: the file was applied.
    assert "from-night.db" in result.output
    assert "no such option" not in result.output.lower()


def test_bad_env_value_names_the_variable(in_tmp: Path) -> None:
    result = _invoke(["run"], CHANGECLOTHES_CONCURRENCY="lots")
    assert result.exit_code == 2
    assert "environment variable CHANGECLOTHES_CONCURRENCY" in result.output
    assert "'--concurrency'" not in result.output


def test_bad_file_value_names_the_file_and_setting(in_tmp: Path) -> None:
    (in_tmp / "changeclothes.toml").write_text('[run]\nconcurrency = "lots"\n')
    result = _invoke(["run"])
    assert result.exit_code == 2
    assert "setting 'concurrency' in changeclothes.toml" in result.output


def _options(command: click.Command) -> list[tuple[click.Command, click.Option]]:
    found = [
        (command, p)
        for p in command.params
        if isinstance(p, click.Option) and p.name not in ("help", "version")
    ]
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            found.extend(_options(sub))
    return found


def test_every_option_has_a_variable_in_help_and_in_the_readme() -> None:
    cli.load_all()
    settings = README.split("### Settings", 1)[1].split("\n### ", 1)[0]
    options = _options(cli)
    assert len(options) > 40
    for command, option in options:
        names = envvar_names(option)
        assert names and option.show_envvar, f"{command.name} {option.opts[0]} has no variable"
        for name in names:
            assert f"`{name}`" in settings, f"README's Settings does not list {name}"
    help_text = _invoke(["run", "--help"]).output
    assert "CHANGECLOTHES_RUN_UNTIL" in re.sub(r"\s+", "", help_text)


def test_config_show_says_where_each_value_came_from(in_tmp: Path) -> None:
    (in_tmp / "changeclothes.toml").write_text("[run]\nconcurrency = 2\n")
    home = in_tmp / "home"
    (home / ".tencentcloud").mkdir(parents=True)
    (home / ".tencentcloud" / "credentials").write_text(
        f"[prod]\nsecret_id = AKIDprod12345678\nsecret_key = {SECRET}\n"
    )
    result = _invoke(
        ["config", "show", "run", "--out", "night", "--profile", "prod"],
        HOME=str(home),
        CHANGECLOTHES_DB="postgresql+asyncpg://user:dbpassword@127.0.0.1/q",
        TENCENTCLOUD_REGION="ap-tokyo",
    )
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.output.splitlines()}
    assert rows["out"].split()[1:] == ["night", "flag"]
    assert rows["concurrency"].split()[1:] == ["2", "file", "changeclothes.toml"]
    assert rows["region"].split()[1:] == ["ap-tokyo", "env", "TENCENTCLOUD_REGION"]
    assert rows["max_attempts"].split()[1:] == ["5", "default"]
    assert "env CHANGECLOTHES_DB" in rows["db"] and "dbpassword" not in result.output
    assert "AKID****5678" in rows["credentials"] and "[prod]" in rows["credentials"]
    assert SECRET not in result.output and "AKIDprod12345678" not in result.output


def test_mistyped_subcommand_suggests_the_nearest(in_tmp: Path) -> None:
    result = _invoke(["stauts"])
    assert result.exit_code == 2
    assert "No such command 'stauts'. Did you mean 'status'?" in result.output


def test_shell_completion_offers_commands_and_options(in_tmp: Path) -> None:
    import subprocess
    import sys

    def complete(words: str) -> list[str]:
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(in_tmp),
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(words.split()) - 1),
            "_CHANGECLOTHES_COMPLETE": "bash_complete",
        }
        code = "from runner.cli import cli; cli(prog_name='changeclothes')"
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
        ).stdout
        return [line.split(",", 1)[1] for line in out.splitlines()]

    assert complete("changeclothes ru") == ["run"]
    assert "--concurrency" in complete("changeclothes run --con")


def test_report_looks_where_run_wrote(in_tmp: Path) -> None:
    """`[run] out` is where the results are, so `report` reads them there too."""
    (in_tmp / "changeclothes.toml").write_text('[run]\nout = "night"\n')
    shown = _invoke(["config", "show", "report"]).output
    assert re.search(r"out\s+night\b", shown), shown
    (in_tmp / "changeclothes.toml").write_text(
        '[run]\nout = "night"\n[report]\nout = "elsewhere"\n'
    )
    assert re.search(r"out\s+elsewhere\b", _invoke(["config", "show", "report"]).output)

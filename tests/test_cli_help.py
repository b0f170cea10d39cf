"""Every command explains itself in --help and is named in the README."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from runner.cli import cli

cli.load_all()

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
CONTRACT = {
    "submit",
    "run",
    "status",
    "retry",
    "export",
    "report",
    "validate",
    "fake-server",
    "demo",
}


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in group.commands.items():
        found.append((*prefix, name))
        if isinstance(command, click.Group):
            found.extend(_commands(command, (*prefix, name)))
    return found


def test_every_contract_command_exists() -> None:
    assert set(cli.commands) >= CONTRACT


@pytest.mark.parametrize("path", _commands(cli), ids=" ".join)
def test_command_has_help_and_readme_mention(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    assert command.help and len(command.help.strip()) > 20, f"{' '.join(path)} has no help"
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert param.help or param.is_flag and param.name == "help", (
                f"{' '.join(path)} {param.opts[0]} has no help"
            )
    assert f"changeclothes {' '.join(path)}" in README, f"README never shows {' '.join(path)}"

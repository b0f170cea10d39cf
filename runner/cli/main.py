"""The command group, its settings file, and the registry of subcommands."""

from __future__ import annotations

import importlib
import logging
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

DEFAULT_CONFIG = "changeclothes.toml"


def _param_names(command: click.Command) -> dict[str, str]:
    """Settings-file keys a command accepts: its long option names and its parameter names."""
    names: dict[str, str] = {}
    for param in command.params:
        if param.name is None:
            continue
        names[param.name] = param.name
        for opt in param.opts:
            if opt.startswith("--"):
                names[opt[2:].replace("-", "_")] = param.name
    return names


def _defaults_for(
    config_path: Path, name: str, command: click.Command, flat: dict[str, Any], section: Any
) -> dict[str, Any]:
    section = section if isinstance(section, dict) else {}
    if isinstance(command, click.Group):  # `db upgrade`: nested tables, same top-level keys
        return {
            sub_name: _defaults_for(config_path, sub_name, sub, flat, section.get(sub_name))
            for sub_name, sub in command.commands.items()
        }
    accepted = _param_names(command)
    values: dict[str, Any] = {}
    for key, value in {**flat, **section}.items():
        param = accepted.get(key.replace("-", "_"))
        if param is not None:
            values[param] = value
        elif key in section:
            raise click.UsageError(f"{config_path}: [{name}] has no setting {key!r}")
    return values


def _default_map(
    config_path: Path, data: dict[str, Any], commands: Mapping[str, click.Command]
) -> dict[str, Any]:
    """Top-level keys apply to every command that has such an option; a `[command]` table
    applies to that command only. Keys are option names (`rsp-img-type` or `rsp_img_type`)."""
    flat = {k: v for k, v in data.items() if not isinstance(v, dict)}
    return {
        name: _defaults_for(config_path, name, command, flat, data.get(name))
        for name, command in commands.items()
    }


# Which module defines each command. Modules are imported only when their command runs (or
# when help lists them), so `status` does not pay for the fake server's or aiohttp's imports.
COMMAND_MODULES = {
    "submit": "submit",
    "validate": "submit",
    "run": "run",
    "status": "store",
    "db": "store",
    "report": "report",
    "export": "report",
    "retry": "report",
    "cancel": "report",
    "fake-server": "fake",
    "demo": "demo",
}


class _Group(click.Group):
    """Loads command modules on demand and applies the settings file to the command run."""

    _settings: tuple[Path, dict[str, Any]] | None = None

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMAND_MODULES) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMAND_MODULES:
            importlib.import_module(f"runner.cli.{COMMAND_MODULES[cmd_name]}")
        return self.commands.get(cmd_name)

    def load_all(self) -> None:
        for name in COMMAND_MODULES:
            self.get_command(click.Context(self), name)

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        # The settings file must be read before subcommand options are parsed, so peek at
        # --config here rather than in the group callback.
        config = Path(DEFAULT_CONFIG)
        explicit = False
        for i, arg in enumerate(args):
            if arg == "--config" and i + 1 < len(args):
                config, explicit = Path(args[i + 1]), True
            elif arg.startswith("--config="):
                config, explicit = Path(arg.split("=", 1)[1]), True
            elif not arg.startswith("-"):
                break
        if explicit and not config.is_file():
            raise click.UsageError(f"settings file {config} does not exist")
        self._settings = None
        if config.is_file():
            try:
                with config.open("rb") as fh:
                    self._settings = (config, tomllib.load(fh))
            except tomllib.TOMLDecodeError as exc:
                raise click.UsageError(f"settings file {config} is not valid TOML: {exc}") from exc
        return super().make_context(info_name, args, parent, **extra)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if self._settings is not None and name is not None and command is not None:
            path, data = self._settings
            # Click hands the subcommand `ctx.default_map[name]` as its defaults.
            ctx.default_map = _default_map(path, data, {name: command})
        return name, command, rest


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    type=click.Path(dir_okay=False),
    help=f"TOML settings file (default: ./{DEFAULT_CONFIG} if present). "
    "Top-level keys apply to every command, a [command] table to that command.",
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="changeclothes-runner")
def cli(config: str | None, verbose: int) -> None:
    """Batch runner for Tencent Cloud's ChangeClothes (virtual try-on) API.

    Submit a CSV/JSONL manifest of model/garment pairs, run the queue within the account's
    concurrency limit, and collect every result image on disk. Reruns resume where a crash
    or an interrupt stopped, without paying twice.
    """
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(
        level=max(level, logging.DEBUG), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

"""The command group, its settings file, and the registry of subcommands."""

from __future__ import annotations

import difflib
import importlib
import logging
from typing import Any

import click

from runner.cli.settings import (
    CONFIG_ENV,
    DEFAULT_CONFIG,
    ENV_PREFIX,
    SettingsFile,
    check_settings,
    defaults_for,
    hoist_global_options,
    name_the_source,
    read_settings_file,
)

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
    "retry": "actions",
    "cancel": "actions",
    "fake-server": "fake",
    "demo": "demo",
    "config": "config",
    "account": "account",
}


def _give_envvars(command: click.Command, path: str) -> None:
    """Every option gets a variable, shown in --help: its own shared name when it has one
    (CHANGECLOTHES_DB), else CHANGECLOTHES_<COMMAND>_<OPTION> (CHANGECLOTHES_RUN_UNTIL)."""
    for param in command.params:
        if not isinstance(param, click.Option) or param.name in ("help", "version"):
            continue
        if param.envvar is None:
            long = next((o for o in param.opts if o.startswith("--")), param.opts[0])
            param.envvar = f"{path}_{long.lstrip('-')}".upper().replace("-", "_")
        param.show_envvar = True
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            _give_envvars(sub, f"{path}_{name}")


class _Group(click.Group):
    """Loads command modules on demand and applies the settings file to the command run."""

    settings: SettingsFile | None = None

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMAND_MODULES) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMAND_MODULES:
            importlib.import_module(f"runner.cli.{COMMAND_MODULES[cmd_name]}")
        command = self.commands.get(cmd_name)
        if command is not None:
            _give_envvars(command, f"{ENV_PREFIX}_{cmd_name}")
        return command

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
        args = hoist_global_options(list(args))
        self.settings = read_settings_file(args)
        if self.settings is not None:
            # Strictness needs every command's options: loaded only when a file exists.
            self.load_all()
            check_settings(self.settings, self.commands)
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.BadParameter as exc:
            name_the_source(exc, self.settings)
            raise

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else None
        unknown = name is not None and self.get_command(ctx, name) is None
        if name is not None and unknown and not name.startswith("-") and not ctx.resilient_parsing:
            close = difflib.get_close_matches(name, self.list_commands(ctx), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            ctx.fail(f"No such command {name!r}.{hint}")
        name, command, rest = super().resolve_command(ctx, args)
        if self.settings is not None and name is not None and command is not None:
            # Click hands the subcommand `ctx.default_map[name]` as its defaults.
            ctx.default_map = {name: defaults_for(self.settings, name, command)}
        return name, command, rest

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.BadParameter as exc:
            name_the_source(exc, self.settings)
            raise


@click.group(
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--config",
    type=click.Path(dir_okay=False),
    envvar=CONFIG_ENV,
    show_envvar=True,
    help=f"TOML settings file (default: ./{DEFAULT_CONFIG} if present). "
    "Top-level keys apply to every command that has such an option, a [command] table to "
    "that command; an unknown key or table is an error. May follow the subcommand.",
)
@click.option(
    "-v",
    "--verbose",
    count=True,
    envvar=f"{ENV_PREFIX}_VERBOSE",
    show_envvar=True,
    help="More log output (-vv for debug). May follow the subcommand.",
)
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

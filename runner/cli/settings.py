"""The settings layers under the flags: the TOML file, environment variables, and telling
the user which layer a bad value came from."""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

DEFAULT_CONFIG = "changeclothes.toml"
ENV_PREFIX = "CHANGECLOTHES"
CONFIG_ENV = f"{ENV_PREFIX}_CONFIG"
_VERBOSE = re.compile(r"-v+|--verbose")


@dataclass(frozen=True)
class SettingsFile:
    path: Path
    data: dict[str, Any]


def hoist_global_options(args: list[str]) -> list[str]:
    """Move `--config X` and `-v` given after the subcommand to before it, where click
    looks for them, so `changeclothes run --config f.toml -vv` works too."""
    i = 0
    while i < len(args) and args[i].startswith("-"):
        i += 2 if args[i] == "--config" else 1
    if i >= len(args):
        return args
    hoisted: list[str] = []
    rest: list[str] = []
    j = i + 1
    while j < len(args):
        arg = args[j]
        if arg == "--":
            rest.extend(args[j:])
            break
        if arg == "--config" and j + 1 < len(args):
            hoisted += args[j : j + 2]
            j += 2
            continue
        if arg.startswith("--config=") or _VERBOSE.fullmatch(arg):
            hoisted.append(arg)
        else:
            rest.append(arg)
        j += 1
    return [*args[:i], *hoisted, args[i], *rest]


def read_settings_file(args: list[str]) -> SettingsFile | None:
    """The file named by --config (or CHANGECLOTHES_CONFIG), else ./changeclothes.toml if
    present. Read before the subcommand's options are parsed, since it supplies defaults."""
    config, explicit = Path(DEFAULT_CONFIG), False
    if os.environ.get(CONFIG_ENV):
        config, explicit = Path(os.environ[CONFIG_ENV]), True
    i = 0
    while i < len(args) and args[i].startswith("-"):
        if args[i] == "--config" and i + 1 < len(args):
            config, explicit = Path(args[i + 1]), True
            i += 1
        elif args[i].startswith("--config="):
            config, explicit = Path(args[i].split("=", 1)[1]), True
        i += 1
    if explicit and not config.is_file():
        raise click.UsageError(f"settings file {config} does not exist")
    if not config.is_file():
        return None
    try:
        with config.open("rb") as fh:
            return SettingsFile(config, tomllib.load(fh))
    except tomllib.TOMLDecodeError as exc:
        raise click.UsageError(f"settings file {config} is not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise click.UsageError(f"settings file {config} cannot be read: {exc}") from None


def option_keys(command: click.Command) -> dict[str, str]:
    """Settings-file keys a command accepts: its long option names and its parameter names."""
    names: dict[str, str] = {}
    for param in command.params:
        if not isinstance(param, click.Option) or param.name is None:
            continue
        if param.name in ("help", "version"):
            continue
        names[param.name] = param.name
        for opt in param.opts:
            if opt.startswith("--"):
                names[opt[2:].replace("-", "_")] = param.name
    return names


def _unknown(path: Path, what: str, name: str, choices: list[str]) -> click.UsageError:
    close = difflib.get_close_matches(name, choices, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return click.UsageError(f"{path}: unknown {what} {name!r}{hint}")


def check_settings(settings: SettingsFile, commands: Mapping[str, click.Command]) -> None:
    """Every key and table must mean something: a typo is an error, never silently ignored."""
    path, data = settings.path, settings.data
    everyone: set[str] = set()
    for command in commands.values():
        everyone |= _all_keys(command)
    for key, value in data.items():
        if isinstance(value, dict):
            if key not in commands:
                raise _unknown(path, "table", key, sorted(commands))
            _check_table(path, key, commands[key], value)
        elif key.replace("-", "_") not in everyone:
            raise _unknown(path, "setting", key, sorted(everyone))


def _all_keys(command: click.Command) -> set[str]:
    if isinstance(command, click.Group):
        return set().union(*(_all_keys(sub) for sub in command.commands.values()))
    return set(option_keys(command))


def _check_table(path: Path, name: str, command: click.Command, table: dict[str, Any]) -> None:
    if isinstance(command, click.Group):
        for key, value in table.items():
            sub = command.commands.get(key)
            if isinstance(value, dict) and sub is not None:
                _check_table(path, f"{name}.{key}", sub, value)
            elif isinstance(value, dict):
                raise _unknown(path, "table", f"{name}.{key}", sorted(command.commands))
            elif key.replace("-", "_") not in _all_keys(command):
                raise _unknown(path, f"setting in [{name}]:", key, sorted(_all_keys(command)))
        return
    accepted = option_keys(command)
    for key in table:
        if key.replace("-", "_") not in accepted:
            raise _unknown(path, f"setting in [{name}]:", key, sorted(accepted))


READS_RUN_OUT = frozenset({"report"})
"""Commands whose --out defaults to the `[run]` table's `out`: they read what `run` wrote."""


def defaults_for(settings: SettingsFile, name: str, command: click.Command) -> dict[str, Any]:
    """Click's `default_map` for one command: top-level keys it has an option for, then its
    `[name]` table (which wins). A group gets one nested map per subcommand."""
    flat = {k: v for k, v in settings.data.items() if not isinstance(v, dict)}
    run_table = settings.data.get("run")
    if name in READS_RUN_OUT and isinstance(run_table, dict) and "out" in run_table:
        # `report` looks at the results where `run` wrote them.
        flat.setdefault("out", run_table["out"])
    return _defaults(name, command, flat, settings.data.get(name))


def _defaults(
    name: str, command: click.Command, flat: dict[str, Any], section: Any
) -> dict[str, Any]:
    section = section if isinstance(section, dict) else {}
    if isinstance(command, click.Group):  # `db upgrade`: nested tables, same top-level keys
        return {
            sub_name: _defaults(sub_name, sub, flat, section.get(sub_name))
            for sub_name, sub in command.commands.items()
        }
    accepted = option_keys(command)
    values: dict[str, Any] = {}
    for key, value in {**flat, **section}.items():
        param = accepted.get(key.replace("-", "_"))
        if param is not None:
            values[param] = value
    return values


def envvar_names(param: click.Parameter) -> list[str]:
    """The variables an option reads (`cli` gives every option at least one)."""
    if isinstance(param.envvar, str):
        return [param.envvar]
    if param.envvar:
        return list(param.envvar)
    return []


def describe_source(
    ctx: click.Context, param: click.Parameter, settings: SettingsFile | None
) -> str:
    """Where a parameter's value came from: flag, env VAR, file PATH or default."""
    source = ctx.get_parameter_source(param.name or "")
    if source is ParameterSource.ENVIRONMENT:
        used = next((n for n in envvar_names(param) if os.environ.get(n)), "?")
        return f"env {used}"
    if source is ParameterSource.DEFAULT_MAP:
        return f"file {settings.path}" if settings else "file"
    if source is ParameterSource.COMMANDLINE:
        return "flag"
    return "default"


def name_the_source(exc: click.BadParameter, settings: SettingsFile | None) -> None:
    """A bad value from a variable or the file is reported under that name, not the flag's."""
    if exc.param is None or exc.ctx is None or exc.param.name is None:
        return
    source = exc.ctx.get_parameter_source(exc.param.name)
    if source is ParameterSource.ENVIRONMENT:
        exc.param_hint = f"environment variable {describe_source(exc.ctx, exc.param, None)[4:]}"
    elif source is ParameterSource.DEFAULT_MAP and settings is not None:
        exc.param_hint = f"setting {exc.param.name!r} in {settings.path}"

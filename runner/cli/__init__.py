"""The `changeclothes` command: a thin face over the library.

Each command lives in its own module and only parses arguments, calls the library and prints.
Settings come from flags, then `CHANGECLOTHES_*` environment variables, then a TOML file
(`--config`, default `changeclothes.toml` in the current folder), then built-in defaults.
"""

from __future__ import annotations

import importlib

from runner.cli.main import cli

# Each module adds its commands to `cli` when imported.
COMMAND_MODULES = ("fake", "store", "submit", "run", "report", "demo")

for _name in COMMAND_MODULES:
    try:
        importlib.import_module(f"runner.cli.{_name}")
    except ModuleNotFoundError as exc:  # a command module not written yet
        if exc.name != f"runner.cli.{_name}":
            raise


def main() -> None:
    cli()


__all__ = ["cli", "main"]

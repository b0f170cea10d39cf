"""The `changeclothes` command: a thin face over the library.

Each command lives in its own module and only parses arguments, calls the library and prints;
the modules are imported when their command runs (see `COMMAND_MODULES`). Settings come from
flags, then `CHANGECLOTHES_*` environment variables, then a TOML file (`--config`, default
`changeclothes.toml` in the current folder), then built-in defaults.
"""

from __future__ import annotations

from runner.cli.main import COMMAND_MODULES, cli


def main() -> None:
    cli()


__all__ = ["COMMAND_MODULES", "cli", "main"]

"""`changeclothes config show`: the settings a command would use, and where each came from."""

from __future__ import annotations

import click

from runner.cli.main import cli
from runner.cli.options import resolve_endpoint
from runner.cli.settings import defaults_for, describe_source
from runner.credentials import CredentialsError, load_credentials, mask


@cli.group("config")
def config_group() -> None:
    """Inspect the settings in effect (flags, CHANGECLOTHES_* variables, settings file)."""


def _masked(value: object) -> str:
    if value is None:
        return "-"
    text = str(value)
    if "://" in text and "@" in text:  # a database URL with a password in it
        from sqlalchemy.engine import make_url

        try:
            return make_url(text).render_as_string(hide_password=True)
        except Exception:  # not a URL after all: hide everything before the '@'
            return "****@" + text.rsplit("@", 1)[1]
    return text


@config_group.command(
    "show", context_settings={"ignore_unknown_options": True, "allow_extra_args": True}
)
@click.argument("command_name", metavar="[COMMAND]", default="run")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def show(ctx: click.Context, command_name: str, args: tuple[str, ...]) -> None:
    """Print the settings COMMAND (default: run) would use, and where each came from:
    flag, env VAR, file PATH or default. Flags after COMMAND are taken as that command's
    (`changeclothes config show run --concurrency 3`). Secrets are masked.
    """
    root = ctx.find_root()
    group = root.command
    assert isinstance(group, click.Group)
    command = group.get_command(root, command_name)
    if command is None or isinstance(command, click.Group):
        raise click.UsageError(f"{command_name!r} is not a command with settings")
    settings = getattr(group, "settings", None)
    defaults = defaults_for(settings, command_name, command) if settings else None
    sub = command.make_context(command_name, list(args), parent=root, default_map=defaults)
    rows: list[tuple[str, str, str]] = []
    for param in command.params:
        if not isinstance(param, click.Option) or param.name in ("help", None):
            continue
        rows.append(
            (param.name, _masked(sub.params[param.name]), describe_source(sub, param, settings))
        )
    if "endpoint" in sub.params:
        endpoint = resolve_endpoint(sub.params["endpoint"], sub.params.get("mainland", False))
        rows.append(("endpoint in use", endpoint, "from --endpoint / --mainland"))
    if "profile" in sub.params:
        try:
            creds = load_credentials(sub.params["profile"])
            token = ", with a token" if creds.token else ""
            rows.append(("credentials", f"{mask(creds.secret_id)}{token}", creds.source))
        except CredentialsError as exc:
            rows.append(("credentials", "none", str(exc)))
    width = max(len(r[0]) for r in rows)
    value_width = min(max(len(r[1]) for r in rows), 48)
    for name, value, source in rows:
        click.echo(f"{name:<{width}}  {value:<{value_width}}  {source}")

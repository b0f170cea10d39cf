"""`changeclothes account set-concurrency|show`: the account's concurrency, shared by every
runner of the queue, and who holds its slots."""

from __future__ import annotations

import json
from datetime import timedelta

import click

from runner.cli.main import cli
from runner.cli.options import db_option, stale_after_option
from runner.cli.runner_view import _ago, runner_lines, runners_json
from runner.cli.store import _require_existing, run_store
from runner.store import leases as account
from runner.store import open_store
from runner.store.runners import list_runners
from runner.store.views import RunnerInfo


@cli.group("account")
def account_group() -> None:
    """The API account's concurrency, shared by every `run` on this queue."""


@account_group.command("set-concurrency")
@click.argument("concurrency", type=click.IntRange(1, 256))
@db_option
def set_concurrency(concurrency: int, db: str) -> None:
    """Set the account's concurrency: the calls all runners of this queue together may have
    in flight (each still within its own --concurrency). Takes effect at each runner's next
    call; a number lowered after JobNumExceed starts again from CONCURRENCY."""

    async def go() -> None:
        async with await open_store(db) as store:
            await account.set_concurrency(store, concurrency)

    run_store(go)
    click.echo(f"The account's concurrency is {concurrency}, for every runner of this queue.")


@account_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@stale_after_option
@db_option
def show(as_json: bool, stale_after: float, db: str) -> None:
    """Print the account's concurrency, the API leases held and the runners holding them.
    Exits 2 when there is no queue database."""
    _require_existing(db)

    async def go() -> tuple[account.Account, list[account.LeaseInfo], list[RunnerInfo]]:
        async with await open_store(db) as store:
            return (
                await account.get_account(store),
                await account.list_leases(store),
                await list_runners(store, timedelta(seconds=stale_after)),
            )

    shown, held, runners = run_store(go)
    if as_json:
        data = {
            "concurrency": shown.concurrency,
            "effective": shown.limit,
            "leases": [
                {"runner": h.runner_id, "job": h.job, "since": h.taken_at.isoformat()} for h in held
            ],
            "runners": runners_json(runners),
        }
        click.echo(json.dumps(data, indent=2))
        return
    if shown.concurrency is None:
        click.echo(
            "Concurrency: not set (each runner keeps to its own --concurrency); set it with "
            "`changeclothes account set-concurrency N` when several runners share the account."
        )
    elif shown.limit != shown.concurrency:
        click.echo(
            f"Concurrency: {shown.concurrency}, lowered to {shown.limit} for now (the account "
            "answered JobNumExceed: someone else is using it)."
        )
    else:
        click.echo(f"Concurrency: {shown.concurrency}")
    click.echo(f"Leases held: {len(held)}")
    for h in held:
        click.echo(f"  {h.runner_id}  {h.job or '-'}  since {_ago(h.taken_at)}")
    for line in runner_lines(runners):
        click.echo(line)

"""``hippocrate guard``: containment status and release."""

from __future__ import annotations

import uuid

import typer

from hippocrate.audit.recorder import Actor
from hippocrate.cli.context import runtime
from hippocrate.guard.errors import NotContained
from hippocrate.guard.honeytokens import plant

app = typer.Typer(help="The guard: containment and honeytokens.", no_args_is_help=True)


@app.command("status")
def status(account_id: uuid.UUID) -> None:
    """Whether an account is contained, and why."""
    with runtime() as rt:
        assert rt.guard is not None
        reason = rt.guard.state.contained(account_id)
    typer.echo(f"contained: {reason}" if reason else "not contained")


@app.command("release")
def release(
    account_id: uuid.UUID,
    reason: str = typer.Option(..., min=10, help="Why the account may work again."),
) -> None:
    """Release a contained account (recorded in the audit trail)."""
    if len(reason.strip()) < 10:
        typer.echo("hippocrate: error: give a reason of at least 10 characters", err=True)
        raise typer.Exit(1)
    with runtime() as rt:
        assert rt.guard is not None
        try:
            with rt.sessions.begin() as session:
                rt.guard.release(
                    session, admin=Actor(role="operator"), account_id=account_id, reason=reason
                )
        except (LookupError, NotContained) as exc:
            typer.echo(f"hippocrate: error: {exc}", err=True)
            raise typer.Exit(1) from None
    typer.echo(f"account {account_id} released")


@app.command("plant")
def plant_command(count: int = typer.Option(5, min=1, max=1000)) -> None:
    """Plant honeytoken patients, indistinguishable from real ones."""
    with runtime() as rt, rt.sessions.begin() as session:
        assert rt.guard is not None
        plant(session=session, guard=rt.guard, count=count)
    typer.echo(f"{count} honeytokens planted")

"""``hippocrate guard``: containment status and release, honeytokens.

Every command reads and writes the deployment's shared guard state (the database, or
Redis when configured), so what it says and does holds at once in every running
server.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import typer

from hippocrate.admin.service import settle_release_requests
from hippocrate.cli.context import (
    fail,
    operator_actor,
    operator_principal,
    operator_work,
    platform_work,
    runtime,
)
from hippocrate.guard.errors import NotContained
from hippocrate.guard.honeytokens import CanaryDomainMissing, plant, tend
from hippocrate.tags import Purpose

app = typer.Typer(help="The guard: containment and honeytokens.", no_args_is_help=True)


@app.command("status")
def status(account_id: uuid.UUID) -> None:
    """Whether an account (or an operator) is contained, and why."""
    with runtime() as rt:
        assert rt.guard is not None
        reason = rt.guard.state.contained(account_id)
    typer.echo(f"contained: {reason}" if reason else "not contained")


@app.command("release")
def release(
    account_id: uuid.UUID,
    reason: str = typer.Option(..., min=10, help="Why the account may work again."),
) -> None:
    """Release a contained account or operator (recorded in the audit trail).

    An operator releases at once (another operator than the one contained): the command
    line is the server's owner, as for the first administrator. The released principal
    keeps its counts, exactly as when two administrators release it through the API,
    and the release requests waiting for it are settled."""
    if len(reason.strip()) < 10:
        raise fail("give a reason of at least 10 characters")
    principal = operator_principal()
    if principal.account_id == account_id:
        raise fail("an operator cannot release themselves")
    with runtime() as rt:
        assert rt.guard is not None
        try:
            with operator_work(rt, principal) as session:
                rt.guard.release(
                    session, admin=operator_actor(principal), account_id=account_id, reason=reason
                )
                settle_release_requests(
                    session=session, actor=principal, target_id=account_id, now=datetime.now(UTC)
                )
        except (LookupError, NotContained) as exc:
            raise fail(str(exc)) from None
    typer.echo(f"account {account_id} released")


@app.command("plant")
def plant_command(count: int = typer.Option(5, min=1, max=1000)) -> None:
    """Plant honeytoken patients that live like real ones (account, consultations with
    practitioners of the platform, emails, trail), each placed with a practitioner who
    has none among their newest patients; their addresses are at the canary domain."""
    with runtime() as rt:
        assert rt.guard is not None
        try:
            with platform_work(rt, Purpose.SETUP) as session:
                plant(session=session, guard=rt.guard, count=count)
        except CanaryDomainMissing as exc:
            raise fail(str(exc)) from None
    typer.echo(f"{count} honeytokens planted")


@app.command("tend")
def tend_command() -> None:
    """Place a new honeytoken with every practitioner who has none among their newest
    patients (run it from the scheduler, e.g. hourly); gives their lives to honeytokens
    planted before there were practitioners."""
    with runtime() as rt:
        assert rt.guard is not None
        try:
            with platform_work(rt, Purpose.SETUP) as session:
                placed = tend(session=session, guard=rt.guard)
        except CanaryDomainMissing as exc:
            raise fail(str(exc)) from None
    typer.echo(f"{placed} honeytokens placed")

"""``hippocrate audit``: verify the trail, chain what is pending, write a signed
checkpoint."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer

from hippocrate.audit.chainer import chain_pending, pending_count
from hippocrate.audit.scheduler import checkpoint_round
from hippocrate.audit.service import verify
from hippocrate.audit.witness import limits
from hippocrate.cli.context import runtime
from hippocrate.cli.progress import Progress

app = typer.Typer(help="The audit trail.", no_args_is_help=True)


@app.command("verify")
def verify_command(
    public_key: str | None = typer.Option(
        None, help="Hex Ed25519 public key to verify with, instead of the key provider's."
    ),
    witness: list[Path] = typer.Option(
        [],
        "--witness",
        help="A witness's copy: the checkpoints it received, one JSON line each (repeatable).",
    ),
    workers: int = typer.Option(
        0,
        min=0,
        help="Processes that walk the chain, each over contiguous stretches (0: one per core; "
        "1: this process alone).",
    ),
) -> None:
    """Check the hash chain, every signed checkpoint, the checkpoint file against its
    mirrors and the witnesses' copies, and that no old event lies beyond the last
    checkpoint. Prints what was proved and what was not; exit 1 on any problem.
    Interrupted (Ctrl-C), it stops at once: it changes nothing, so it is only run again."""
    walked = Progress(
        "audit verify",
        unit="events",
        interrupted=lambda done: (
            f"{done} events walked, nothing changed; run 'hippocrate audit verify' again"
        ),
        summarise=False,
    )
    with runtime() as rt, rt.sessions() as session, walked:
        key = (
            bytes.fromhex(public_key)
            if public_key
            else rt.sessions.vault.provider.signing_public_key()
        )
        settings = rt.settings
        report = verify(
            session=session,
            public_key=key,
            checkpoint_files=settings.checkpoint_files,
            witness_files=witness,
            now=datetime.now(UTC),
            max_gap=timedelta(
                seconds=settings.audit_checkpoint_seconds + settings.audit_checkpoint_grace_seconds
            ),
            workers=workers or None,
            tally=walked,
        )
        unproved = [*report.unproved, *limits(settings, witness)]
    if report.ok:
        typer.echo(f"audit trail intact: {report.events} events, {report.checkpoints} checkpoints")
    else:
        typer.echo(f"audit trail not shown intact, {len(report.problems)} problem(s):")
        for problem in report.problems:
            typer.echo(f"  ! {problem}")
    typer.echo("proved:")
    for line in report.proved:
        typer.echo(f"  - {line}")
    typer.echo("not proved:")
    for line in unproved or ["nothing left out by this configuration"]:
        typer.echo(f"  - {line}")
    if report.ok:
        walked.say_summary()  # on stderr, as every long command's last line
        return
    first = report.first_problem or ""
    where = ""
    if report.first_bad_seq is not None:
        where = f" at sequence {report.first_bad_seq}"
        first = first.removeprefix(f"sequence {report.first_bad_seq}: ")
    more = len(report.problems) - 1
    typer.echo(
        f"hippocrate: error: audit trail tampered{where}: {first}"
        + (f" (and {more} more problem(s), listed on stdout)" if more else ""),
        err=True,
    )
    raise typer.Exit(1)


@app.command("chain")
def chain_command() -> None:
    """Chain every event committed and not yet chained (the app's chainer does it as it
    serves; this is for a deployment stopped with events pending, or before an upgrade
    that drops them)."""
    with runtime() as rt:
        done = chain_pending(rt.sessions.engine)
        left, _ = pending_count(rt.sessions.engine)
    typer.echo(f"{done} event(s) chained, {left} pending")


@app.command("checkpoint")
def checkpoint_command() -> None:
    """Sign the chain's head, append it to the checkpoint file(s), and send it (and any
    checkpoint still pending) to the witnesses."""
    with runtime() as rt:
        done = checkpoint_round(rt)
    if done.written is None:
        typer.echo("no new events since the last checkpoint")
    else:
        typer.echo(f"checkpoint written at sequence {done.written.seq}")
    for name, sent in done.delivery.sent.items():
        pending = done.delivery.pending.get(name, 0)
        failure = done.delivery.failures.get(name)
        line = f"witness {name}: {sent} sent, {pending} pending"
        typer.echo(line + (f" ({failure}; retried at the next checkpoint)" if failure else ""))

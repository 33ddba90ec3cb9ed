"""``hippocrate audit``: verify the trail, write a signed checkpoint."""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from hippocrate.audit.service import verify, write_checkpoint
from hippocrate.cli.context import runtime

app = typer.Typer(help="The audit trail.", no_args_is_help=True)


@app.command("verify")
def verify_command(
    public_key: str | None = typer.Option(
        None, help="Hex Ed25519 public key to verify with, instead of the key provider's."
    ),
) -> None:
    """Check the hash chain and every signed checkpoint; name the first bad sequence."""
    with runtime() as rt, rt.sessions() as session:
        key = (
            bytes.fromhex(public_key)
            if public_key
            else rt.sessions.vault.provider.signing_public_key()
        )
        report = verify(
            session=session, public_key=key, checkpoint_files=rt.settings.checkpoint_files
        )
    if report.ok:
        typer.echo(f"audit trail intact: {report.events} events, {report.checkpoints} checkpoints")
        return
    typer.echo(
        f"hippocrate: error: audit trail tampered at sequence {report.first_bad_seq}: "
        f"{report.problems[0]}",
        err=True,
    )
    raise typer.Exit(1)


@app.command("checkpoint")
def checkpoint_command() -> None:
    """Sign the chain's head and append it to the checkpoint file(s)."""
    with runtime() as rt, rt.sessions() as session:
        written = write_checkpoint(
            session=session,
            provider=rt.sessions.vault.provider,
            files=rt.settings.checkpoint_files,
            now=datetime.now(UTC),
        )
    if written is None:
        typer.echo("no new events since the last checkpoint")
    else:
        typer.echo(f"checkpoint written at sequence {written.seq}")

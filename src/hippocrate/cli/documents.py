"""``hippocrate documents``: check a document this platform issued."""

from __future__ import annotations

from pathlib import Path

import typer

from hippocrate.cli.context import fail, platform_work, runtime
from hippocrate.documents.service import DocumentsUnavailable, check_code, check_file
from hippocrate.tags import Purpose

app = typer.Typer(no_args_is_help=True, help="Documents issued by the platform.")


@app.command("verify")
def verify(
    file: Path | None = typer.Argument(None, help="The PDF to check."),
    code: str | None = typer.Option(None, "--code", help="Or only the code printed on it."),
) -> None:
    """Say whether this platform issued the document unchanged (exit 0) or not (exit 3)."""
    if (file is None) == (code is None):
        raise fail("give the PDF to check, or --code CODE")
    data = None
    if file is not None:
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise fail(f"cannot read {file}: {exc.strerror}") from None
    with runtime() as rt, platform_work(rt, Purpose.OPERATIONS) as session:
        try:
            if data is not None:
                check = check_file(session=session, settings=rt.settings, data=data)
            else:
                assert code is not None
                check = check_code(session=session, code=code)
        except DocumentsUnavailable as exc:
            raise fail(str(exc)) from None
    typer.echo(("genuine: " if check.issued else "NOT genuine: ") + check.reason)
    if not check.issued:
        raise typer.Exit(3)

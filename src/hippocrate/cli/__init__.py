"""The ``hippocrate`` command line. One module per topic; errors are one line, exit 1."""

from __future__ import annotations

import sys

import typer
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from typer.exceptions import TyperException

from hippocrate.cli import (
    accounts,
    audit,
    breach,
    context,
    demo,
    documents,
    guard,
    interop,
    keys,
    patients,
)
from hippocrate.db.engine import BadDatabaseURL
from hippocrate.identifiers import InvalidIdentifier
from hippocrate.patients.errors import PatientError
from hippocrate.runtime import NotInitialised
from hippocrate.vault import VaultError

app = typer.Typer(
    name="hippocrate",
    help="Hippocrate: teleconsultation whose database dump exposes nothing usable.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
demo.register(app)
app.add_typer(keys.app, name="keys")
app.add_typer(patients.app, name="patients")
app.add_typer(audit.app, name="audit")
app.add_typer(guard.app, name="guard")
app.add_typer(accounts.app, name="accounts")
app.command("import")(interop.import_patients)
app.add_typer(documents.app, name="documents")
app.add_typer(breach.app, name="breach")
app.command("drill")(breach.drill)

_EXPECTED = (
    VaultError,
    NotInitialised,
    PatientError,
    InvalidIdentifier,
    BadDatabaseURL,
    FileExistsError,
)


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "input"
        return f"invalid {where}: {first['msg']}"
    if isinstance(exc, SQLAlchemyError):
        orig = getattr(exc, "orig", None)
        reason = str(orig) if orig is not None else (str(exc) or type(exc).__name__)
        return f"database error: {reason.splitlines()[0]}"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the command, turns every expected failure into one line."""
    context.configure_logs()
    try:
        result = app(args=argv, standalone_mode=False)
    except KeyboardInterrupt:
        # Before or after a command's long work (which says more itself): every unit of
        # work under way rolled back.
        print("hippocrate: interrupted; nothing under way was kept", file=sys.stderr)
        sys.exit(130)
    except typer.Abort:
        print("hippocrate: aborted", file=sys.stderr)
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except TyperException as exc:
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            print(f"hippocrate: error: {exc}", file=sys.stderr)
        sys.exit(getattr(exc, "exit_code", 2))
    except (*_EXPECTED, ValidationError, SQLAlchemyError, OSError) as exc:
        print(f"hippocrate: error: {_one_line(exc)}", file=sys.stderr)
        sys.exit(1)
    sys.exit(result if isinstance(result, int) else 0)

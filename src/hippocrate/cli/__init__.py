"""The ``hippocrate`` command line. One module per topic; errors are one line, exit 1.

A topic's module is imported only when its command runs (or for ``--help``): ``audit
verify`` does not load the PDF, signature and FHIR libraries that ``documents verify``
needs, and starts in a fraction of the time.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer
import typer.main
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from typer.core import TyperGroup
from typer.exceptions import TyperException

from hippocrate.cli import context
from hippocrate.db.engine import BadDatabaseURL
from hippocrate.identifiers import InvalidIdentifier
from hippocrate.patients.errors import PatientError
from hippocrate.runtime import NotInitialised
from hippocrate.vault import VaultError

#: Commands loaded when named: the name, then the module of ``hippocrate.cli`` and its
#: attribute (a Typer app for a group of commands, a function for one command).
LAZY: dict[str, tuple[str, str]] = {
    "demo-account": ("demo", "demo_account"),
    "init": ("demo", "init"),
    "seed": ("demo", "seed"),
    "serve": ("demo", "serve"),
    "demo": ("demo", "demo"),
    "keys": ("keys", "app"),
    "patients": ("patients", "app"),
    "audit": ("audit", "app"),
    "guard": ("guard", "app"),
    "accounts": ("accounts", "app"),
    "import": ("interop", "import_patients"),
    "documents": ("documents", "app"),
    "breach": ("breach", "app"),
    "drill": ("breach", "drill"),
}


def lazy_command(name: str) -> Any:
    """The click command ``name`` of :data:`LAZY`, its module imported now."""
    module, attribute = LAZY[name]
    found = getattr(importlib.import_module(f"hippocrate.cli.{module}"), attribute)
    holder = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    if isinstance(found, typer.Typer):
        holder.add_typer(found, name=name)
        return typer.main.get_command(holder).commands[name]  # type: ignore[attr-defined]
    holder.command(name)(found)
    return typer.main.get_command(holder)  # one command: itself, not a group


class _Commands(TyperGroup):
    """The root group: the commands of :data:`LAZY`, each loaded when named."""

    def list_commands(self, ctx: Any) -> list[str]:
        return list(LAZY)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in LAZY and cmd_name not in self.commands:
            self.add_command(lazy_command(cmd_name), cmd_name)
        return super().get_command(ctx, cmd_name)


app = typer.Typer(
    name="hippocrate",
    help="Hippocrate: teleconsultation whose database dump exposes nothing usable.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=_Commands,
)


@app.callback()
def _root() -> None:
    """Nothing before a command (the root's help is the app's)."""


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

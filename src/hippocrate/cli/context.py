"""Shared helpers for CLI commands: settings, an open runtime, and the two kinds of
units of work a command may open.

A command is a second process beside the running servers; it goes through the same
unit of work as a request (``hippocrate.work``): recorded, checked by the guard.

- ``platform_work``: the platform itself sets up or maintains (init, seed, honeytokens,
  the first administrator); it reads only what it writes, and the trail names it
  "platform operator".
- ``operator_work``: a named operator reads patient data, one patient at a time,
  under a break-glass grant with a stated reason, counted and contained by the guard
  like any staff member, and shown to the patient in their access history.
"""

from __future__ import annotations

import logging
import os
import pwd
import re
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from pydantic import ValidationError
from sqlalchemy.orm import Session

from hippocrate import logs
from hippocrate.access.principal import Principal, operator_id
from hippocrate.audit.recorder import Actor
from hippocrate.config import Settings
from hippocrate.guard.errors import Contained
from hippocrate.identity.models import Role
from hippocrate.runtime import Runtime
from hippocrate.tags import Purpose
from hippocrate.work import unit_of_work

_OPERATOR_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


def settings() -> Settings:
    return Settings()


def configure_logs(level: int = logging.WARNING) -> None:
    """Every logger of the command goes through ``hippocrate.logs`` (the configured
    format, the allow-list of what a line may say), on stderr. Commands log warnings and
    above (their output is their own lines); ``serve`` logs requests too. Settings that
    do not parse leave the defaults: the command then says what is wrong with them."""
    try:
        config = settings()
    except ValidationError:
        return
    logs.configure(config, level=level)


def fail(message: str) -> typer.Exit:
    """Print one readable line on stderr; raise what this returns (exit status 1)."""
    typer.echo(f"hippocrate: error: {message}", err=True)
    return typer.Exit(1)


@contextmanager
def runtime(*, require_schema: bool = True) -> Iterator[Runtime]:
    opened = Runtime.open(settings(), require_schema=require_schema)
    try:
        yield opened
    finally:
        opened.close()


def _security_log_to_file(rt: Runtime) -> None:
    """A command's security events (containment) go to ``DATA_DIR/security.log``
    (0600): its output stays one line, and the event is kept (the trail and the alerts
    have it too)."""
    log = logging.getLogger("hippocrate.security")
    if any(isinstance(h, logging.FileHandler) for h in log.handlers):
        return
    path = rt.settings.data_dir / "security.log"
    path.touch(mode=0o600, exist_ok=True)
    kept = logging.FileHandler(path, encoding="utf-8")
    kept.setFormatter(logs.formatter("json"))  # one JSON object per line, allow-listed
    log.addHandler(kept)
    log.propagate = False


@contextmanager
def platform_work(rt: Runtime, purpose: Purpose) -> Iterator[Session]:
    """A unit of work of the platform itself (setup, maintenance)."""
    _security_log_to_file(rt)
    with unit_of_work(rt, Actor(role="operator", purpose=purpose)) as session:
        yield session


def operator_principal() -> Principal:
    """The operator running this command: the system account of the process's real
    user id. Not a name the command is told (``--operator``, ``$USER``): a contained
    operator could then come back under another one. Each person who runs commands on
    the server has a system account of their own, with read access to the data folder
    (under ``sudo -u`` the command runs as, and is counted as, the target user)."""
    try:
        chosen = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        chosen = f"uid-{os.getuid()}"
    if not _OPERATOR_NAME.fullmatch(chosen):
        raise fail(f"the system user {chosen!r} cannot name an operator")
    return Principal(
        account_id=operator_id(chosen),
        role=Role.OPERATOR,
        operator=chosen,
    )


def operator_actor(principal: Principal) -> Actor:
    return Actor(
        role=Role.OPERATOR.value, account_id=principal.account_id, purpose=Purpose.BREAK_GLASS
    )


@contextmanager
def operator_work(rt: Runtime, principal: Principal) -> Iterator[Session]:
    """A unit of work of a named operator; a contained operator is refused here, and
    one the guard contains during it gets one line and exit status 1."""
    assert rt.guard is not None
    _security_log_to_file(rt)
    try:
        with unit_of_work(rt, operator_actor(principal)) as session:
            rt.guard.ensure_not_contained(principal.account_id, session=session)
            yield session
    except Contained as exc:
        raise fail(
            f"operator {principal.operator} is contained ({exc.reason}); "
            f"an administrator must release {principal.account_id}"
        ) from None

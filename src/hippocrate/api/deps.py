"""Request dependencies: the unit of work, the clock, and the authenticated principal.

Every route needs a principal unless it is declared public: routers for authenticated
routes are built with ``authenticated_router()``, which adds the dependency to every
route it holds.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from hippocrate import logs, work
from hippocrate.access.errors import NotAuthenticated
from hippocrate.access.policy import purpose_of
from hippocrate.access.principal import Principal
from hippocrate.audit.recorder import Actor, recorder_of
from hippocrate.config import Settings
from hippocrate.identity.sessions import Resolved, principal_for, resolve
from hippocrate.keyring.service import UNWRAP_BUDGET
from hippocrate.runtime import Runtime
from hippocrate.vault.core import AUTHENTICATED

_bearer = HTTPBearer(auto_error=False, description="The token from /auth/login or /auth/mfa")


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_settings(request: Request) -> Settings:
    return get_runtime(request).settings


def request_id(request: Request) -> str:
    found: str | None = getattr(request.state, "request_id", None)
    return found or uuid.uuid4().hex


def unit_of_work(request: Request) -> Iterator[Session]:
    """One transaction per request (``hippocrate.work.unit_of_work``): committed if the
    route returns, rolled back if it raises. It ends before the response is sent, so a
    failed commit is a failed request. Anonymous until the principal is known."""
    actor = Actor(role="anonymous", request_id=request_id(request))
    with work.unit_of_work(get_runtime(request), actor) as session:
        yield session


@contextmanager
def unit_of_its_own(request: Request) -> Iterator[Session]:
    """A short unit of work beside the request's, committed when the block ends: for
    counters that must be written before the request's own work starts (admission of
    anonymous requests), so that they neither wait for that work nor make its database
    connection be taken before it needs one."""
    actor = Actor(role="anonymous", request_id=request_id(request))
    with work.unit_of_work(get_runtime(request), actor) as session:
        yield session


def now() -> datetime:
    return datetime.now(UTC)


DB = Annotated[Session, Depends(unit_of_work, scope="function")]
Now = Annotated[datetime, Depends(now)]
AppSettings = Annotated[Settings, Depends(get_settings)]


def current_session(
    db: DB,
    settings: AppSettings,
    clock: Now,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Resolved:
    """The live session of the bearer token; MFA may still be pending."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise NotAuthenticated()
    return resolve(session=db, settings=settings, token=credentials.credentials, now=clock)


CurrentSession = Annotated[Resolved, Depends(current_session)]


def current_principal(request: Request, db: DB, resolved: CurrentSession) -> Principal:
    """The authenticated principal, second factor completed where required. From here
    on, the request's audit events name it."""
    return act_as(request, db, resolved)


def act_as(request: Request, db: Session, resolved: Resolved) -> Principal:
    """The principal of a resolved session, for the request's unit of work: refused if
    the second factor is pending or the account contained; from here on the request's
    audit events name it and its unwraps spend the authenticated budget. The one step
    every way in takes (the API's bearer token, the pages' cookie: ``hippocrate.web``)."""
    principal = principal_for(session=db, resolved=resolved)
    logs.bind_principal(role=principal.role.value, account_id=principal.account_id)
    guard = get_runtime(request).guard
    if guard is not None:
        guard.ensure_not_contained(principal.account_id, session=db)
    recorder = recorder_of(db)
    if recorder is not None:
        recorder.actor = Actor(
            role=principal.role.value,
            account_id=principal.account_id,
            purpose=purpose_of(principal),
            request_id=recorder.actor.request_id,
        )
    # From here on the request's unwraps spend the authenticated budget, not the
    # anonymous one its sign-in-less start was given.
    db.info[UNWRAP_BUDGET] = AUTHENTICATED
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def authenticated_router(**kwargs: object) -> APIRouter:
    """A router whose every route requires an authenticated principal."""
    dependencies = list(kwargs.pop("dependencies", []))  # type: ignore[call-overload]
    return APIRouter(dependencies=[Depends(current_principal), *dependencies], **kwargs)  # type: ignore[arg-type]


def public_router(**kwargs: object) -> APIRouter:
    """A router of public routes (sign-in, registration): say so by using this."""
    return APIRouter(**kwargs)  # type: ignore[arg-type]

"""Building blocks of the administrators' tests: the app with its guard on the test's
clock and on a real shared state (the database, or Redis), administrators signed in the
real way, the outbox read as each account's mailbox, and the trail's events."""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import select

from hippocrate.api.deps import now as now_dependency
from hippocrate.app import create_app
from hippocrate.audit.models import AuditEvent
from hippocrate.guard.service import Guard
from hippocrate.guard.state import DatabaseState, GuardState, RedisState
from hippocrate.identity.models import Account, AccountStatus, Role
from hippocrate.runtime import Runtime
from tests.conftest import Store
from tests.consultations.helpers import T0, Api, Clock, settings_for
from tests.consultations.helpers import Actor as Signed
from tests.guard.helpers import guard_of, sign_in, staff_member
from tests.identity.helpers import TestUser

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette\.testclient`")
    from fastapi.testclient import TestClient

REDIS_URL = os.environ.get("HIPPOCRATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
STATES = ["database", "redis"]
REASON = "Faux positif vérifié par téléphone avec le praticien"


def open_state(kind: str, store: Store) -> GuardState:
    """The guard's shared state of ``kind``: the database, or Redis under a prefix of
    the test's own (nothing is shared with other tests)."""
    if kind == "database":
        return DatabaseState(store.sessions)
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"no Redis at {REDIS_URL} (CI is set): {exc}", pytrace=False)
        pytest.skip(f"no Redis at {REDIS_URL}: {exc}")
    finally:
        client.close()
    return RedisState(REDIS_URL, prefix=f"hippocrate:test-{uuid.uuid4().hex}:guard:")


@contextmanager
def admin_api(store: Store, tmp_path: Path, state: str, **changes: Any) -> Iterator[Api]:
    """The app on ``store``, its clock and its guard's on the test's clock, the guard's
    state the real one of ``state``."""
    settings = settings_for(tmp_path, store, **changes)
    clock = Clock(T0)

    def guard_time() -> float:
        return clock.now.timestamp()  # the simulated time, read at each check

    guard = Guard(settings, store.sessions.vault, open_state(state, store), now=guard_time)
    app = create_app(runtime=Runtime(settings, store.sessions, guard=guard))
    app.dependency_overrides[now_dependency] = clock
    with TestClient(app) as client:
        yield Api(client, store, settings, clock)


@contextmanager
def plain_api(store: Store, tmp_path: Path, **changes: Any) -> Iterator[Api]:
    """The app as a deployment opens it (guard state from the settings: the database)."""
    settings = settings_for(tmp_path, store, **changes)
    clock = Clock(T0)
    app = create_app(runtime=Runtime(settings, store.sessions))
    app.dependency_overrides[now_dependency] = clock
    with TestClient(app) as client:
        yield Api(client, store, settings, clock)


def admin(api: Api) -> tuple[TestUser, Signed]:
    """An administrator with a password and TOTP, signed in through the API."""
    user = staff_member(api, Role.ADMIN)
    return user, sign_in(api, user)


def relogin(api: Api, user: TestUser) -> Signed:
    api.clock.advance(seconds=31)  # a fresh TOTP step
    return sign_in(api, user)


def mailbox(api: Api, address: str) -> list[EmailMessage]:
    """The messages the outbox holds for ``address``, oldest first."""
    outbox = api.settings.outbox_dir
    if not outbox.exists():
        return []
    found = []
    for path in sorted(outbox.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns):
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        if message["To"] == address:
            found.append(message)
    return found


def raw_mail(api: Api, address: str) -> str:
    """Everything delivered to ``address``, as bytes would show it."""
    return "\n".join(m.as_string() for m in mailbox(api, address))


def subjects(api: Api, address: str) -> list[str]:
    return [" ".join(str(m["Subject"]).split()) for m in mailbox(api, address)]


def contain(api: Api, account_id: uuid.UUID) -> None:
    """What the guard's containment leaves: the mark in the state, the account
    disabled with reason ``contained``."""
    guard_of(api).state.contain(account_id, "breadth: test")
    with api.store.sessions.begin() as session:
        account = session.get(Account, account_id)
        if account is not None:
            account.status, account.disabled_reason = AccountStatus.DISABLED, "contained"


def events(api: Api, action: str) -> list[AuditEvent]:
    with api.store.sessions() as session:
        return list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
            )
        )


def status_of(api: Api, account_id: uuid.UUID) -> tuple[AccountStatus, str | None]:
    with api.store.sessions() as session:
        account = session.get(Account, account_id)
        assert account is not None
        return account.status, account.disabled_reason

"""The notice job's queue survives its workers: a worker process killed in the middle of
a batch (SIGKILL: no cleanup) loses no notice, and no patient receives two different
notices; a second worker finishes the work. On the embedded default (SQLite database,
SQLite queue) and on the scale-out path (PostgreSQL, Redis queue and guard state)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import func, select

from hippocrate.breach.models import Notice, NoticeStatus
from hippocrate.identity.models import Role
from tests.breach.test_notices import incident_with_victims
from tests.breach.test_register import ASSESSMENT
from tests.conftest import IN_CI, Store
from tests.guard.helpers import guarded_api, sign_in, staff_member
from tests.notify.conftest import Inbox, SmtpServer, _serve

REDIS_URL = os.environ.get("HIPPOCRATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
SUBJECT = "incident de sécurité"


class SlowInbox(Inbox):
    """A relay that takes a moment per message, so a worker is caught mid-batch."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(0.12)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def slow_smtp() -> Iterator[SmtpServer]:
    yield from _serve(SlowInbox())


def notices_received(inbox: Inbox) -> list[tuple[str, str]]:
    """(recipient, Message-ID) of every notice the relay accepted."""
    return [
        (rcpt, str(mail.message["Message-ID"]))
        for mail in list(inbox.received)
        if SUBJECT in str(mail.message["Subject"])
        for rcpt in mail.recipients
    ]


def worker(env: dict[str, str], cwd: Path, name: str, *args: str) -> subprocess.Popen[bytes]:
    """``hippocrate breach worker`` in a process of its own, its output in ``name``.log."""
    return worker_command(env, cwd, name, "breach", "worker", *args)


def worker_command(
    env: dict[str, str], cwd: Path, name: str, *args: str
) -> subprocess.Popen[bytes]:
    """``hippocrate ARGS`` in a process of its own, its output in ``name``.log."""
    with (cwd / f"{name}.log").open("wb") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; from hippocrate.cli import main; main(sys.argv[1:])",
                *args,
            ],
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def test_a_worker_killed_mid_batch_loses_nothing_on_the_embedded_default(
    sqlite_store: Store, tmp_path: Path, slow_smtp: SmtpServer
) -> None:
    killed_worker(sqlite_store, tmp_path, slow_smtp, "embedded")


@pytest.mark.parametrize("store", ["postgresql"], indirect=True)
def test_a_worker_killed_mid_batch_loses_nothing_on_postgresql_and_redis(
    store: Store, tmp_path: Path, slow_smtp: SmtpServer
) -> None:
    killed_worker(store, tmp_path, slow_smtp, "scale-out")


def killed_worker(store: Store, tmp_path: Path, slow_smtp: SmtpServer, path: str) -> None:
    """Launch an incident's notices, kill the first worker mid-batch, let a second one
    finish; check that nothing was lost and nothing sent twice."""
    changes: dict[str, Any] = {
        "smtp_host": slow_smtp.host,
        "smtp_port": slow_smtp.port,
        "breach_notice_lease_seconds": 1.0,
    }
    if path == "scale-out":
        client = redis.Redis.from_url(REDIS_URL)
        try:
            client.ping()
        except redis.RedisError as exc:
            if IN_CI:
                pytest.fail(f"no Redis at {REDIS_URL} (CI is set): {exc}", pytrace=False)
            pytest.skip(f"no Redis at {REDIS_URL}: {exc}")
        finally:
            client.close()
        changes["redis_url"] = REDIS_URL
    with guarded_api(store, tmp_path, **changes) as api:
        dpo, url, version, victims, _cases = incident_with_victims(api)
        reference = api.client.get(url, headers=dpo.headers).json()["reference"]
        assessed = api.client.put(
            f"{url}/assessment",
            headers=dpo.headers,
            json={"version": version, "assessment": ASSESSMENT},
        )
        version = assessed.json()["version"]
        asked = api.client.post(f"{url}/notices", headers=dpo.headers, json={"version": version})
        assert asked.status_code == 202, asked.text
        if path == "scale-out":  # a second DPO approves through the API
            deputy = sign_in(api, staff_member(api, Role.DPO))
            approved = api.client.post(
                f"{url}/notices/approve",
                headers=deputy.headers,
                json={"version": version + 1, "note": "vérifié"},
            )
            assert approved.status_code == 202, approved.text
        from hippocrate.notify import delivery

        assert delivery.drain()  # the prepare task is queued once the approval committed
        settings = api.settings
        key_file = store.sessions.vault.provider._path  # type: ignore[attr-defined]

    env = {k: v for k, v in os.environ.items() if not k.startswith("HIPPOCRATE_")}
    env.update(
        {
            "HIPPOCRATE_DATA_DIR": str(settings.data_dir),
            "HIPPOCRATE_DATABASE_URL": store.url,
            "HIPPOCRATE_KEY_FILE": str(key_file),
            "HIPPOCRATE_SMTP_HOST": slow_smtp.host,
            "HIPPOCRATE_SMTP_PORT": str(slow_smtp.port),
            "HIPPOCRATE_BREACH_NOTICE_LEASE_SECONDS": "1",
            "HIPPOCRATE_OUTBOX_DIR": str(tmp_path / "outbox"),
        }
    )
    if path == "scale-out":
        env["HIPPOCRATE_REDIS_URL"] = REDIS_URL

    if path == "embedded":  # one DPO: an operator approves at the command line
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)  # as init makes it
        approval = worker_command(
            env, tmp_path, "approve", "breach", "approve-notices", reference, "--note", "vérifié"
        )
        assert approval.wait(60) == 0, (tmp_path / "approve.log").read_text()

    first = worker(env, tmp_path, "first", "--workers", "1")
    deadline = time.monotonic() + 60
    while len(notices_received(slow_smtp.inbox)) < 4:
        assert first.poll() is None, (tmp_path / "first.log").read_text()
        assert time.monotonic() < deadline, "the first worker sent nothing"
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)  # mid-batch: no cleanup, no mark of what it held
    first.wait(10)
    killed_after = len(notices_received(slow_smtp.inbox))
    assert killed_after < len(victims), "the first worker finished before it was killed"

    time.sleep(1.5)  # the dead worker's lease runs out
    second = worker(env, tmp_path, "second", "--once")
    assert second.wait(120) == 0, (tmp_path / "second.log").read_text()

    received = notices_received(slow_smtp.inbox)
    by_recipient: dict[str, set[str]] = {}
    for rcpt, message_id in received:
        by_recipient.setdefault(rcpt, set()).add(message_id)
    # Nothing lost: every victim has their notice, and every notice is marked sent.
    assert len(by_recipient) == len(victims)
    with store.sessions() as session:
        statuses = dict(
            session.execute(select(Notice.status, func.count()).group_by(Notice.status)).all()
        )
    assert statuses == {NoticeStatus.SENT: len(victims)}
    # Never two different notices: one Message-ID per patient. The one message the
    # killed worker may have had accepted and not yet marked is the same one again.
    assert all(len(ids) == 1 for ids in by_recipient.values())
    assert len(received) - len(victims) <= 1

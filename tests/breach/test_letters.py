"""When the relay refuses every attempt, a notice is retried with a growing delay, then
turns into a letter; the letters' list is written by the command line, whole, readable
by its owner only, and the trail names the operator who asked for the addresses."""

from __future__ import annotations

import csv
import os
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update

from hippocrate.audit.models import AuditEvent
from hippocrate.breach import jobs, notices
from hippocrate.breach.models import Notice, NoticeStatus
from hippocrate.identity.models import Role
from hippocrate.notify import delivery
from hippocrate.patients.models import Patient
from hippocrate.tags import Tag
from tests.breach.test_notice_workers import worker_command
from tests.breach.test_notices import incident_with_victims
from tests.breach.test_register import ASSESSMENT
from tests.conftest import Store
from tests.guard.helpers import guarded_api, sign_in, staff_member


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nothing listens there once closed


def test_a_refused_notice_is_retried_then_becomes_a_letter(
    sqlite_store: Store, tmp_path: Path
) -> None:
    port = _closed_port()
    with guarded_api(sqlite_store, tmp_path, smtp_host="127.0.0.1", smtp_port=port) as api:
        dpo, url, version, victims, _cases = incident_with_victims(api)
        version = api.client.put(
            f"{url}/assessment",
            headers=dpo.headers,
            json={"version": version, "assessment": ASSESSMENT},
        ).json()["version"]
        asked = api.client.post(f"{url}/notices", headers=dpo.headers, json={"version": version})
        assert asked.status_code == 202, asked.text
        deputy = sign_in(api, staff_member(api, Role.DPO))
        approved = api.client.post(
            f"{url}/notices/approve",
            headers=deputy.headers,
            json={"version": version + 1, "note": "vérifié"},
        )
        assert approved.status_code == 202, approved.text
        assert delivery.drain()
        runtime = api.client.app.state.runtime  # type: ignore[attr-defined]
        queue = jobs.open_queue(runtime)
        delays = []
        for attempt in range(1, notices.MAX_ATTEMPTS + 1):
            before = datetime.now(UTC)
            if attempt > 1:
                jobs.sweep(runtime, queue)  # a worker's sweep finds the due notices
            jobs.run_pending(queue)
            with api.store.sessions() as session:
                rows = session.scalars(select(Notice)).all()
                assert {r.attempts for r in rows} == {attempt}
                if attempt < notices.MAX_ATTEMPTS:
                    assert {r.status for r in rows} == {NoticeStatus.QUEUED}
                    delays.append(min(r.next_attempt_at for r in rows) - before)
            # Time passes: every notice is due again.
            with api.store.sessions.begin() as session:
                session.execute(
                    update(Notice).values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
                )
        assert delays == sorted(delays)
        assert delays[0] >= timedelta(seconds=25)
        assert delays[-1] >= 2 ** (len(delays) - 1) * timedelta(seconds=25)
        progress = api.client.get(f"{url}/notices", headers=dpo.headers).json()
        assert progress["post"] == len(victims) == progress["total"]
        reference = api.client.get(url, headers=dpo.headers).json()["reference"]
        settings = api.settings
        key_file = sqlite_store.sessions.vault.provider._path  # type: ignore[attr-defined]
        with api.store.sessions() as session:
            names = {
                p.family_name
                for p in session.scalars(select(Patient).where(Patient.id.in_(victims)))
            }

    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)  # as init makes it
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIPPOCRATE_")}
    env.update(
        {
            "HIPPOCRATE_DATA_DIR": str(settings.data_dir),
            "HIPPOCRATE_DATABASE_URL": sqlite_store.url,
            "HIPPOCRATE_KEY_FILE": str(key_file),
        }
    )
    out = tmp_path / "letters.csv"
    listed = worker_command(
        env, tmp_path, "postal", "breach", "postal", reference, "--out", str(out)
    )
    assert listed.wait(60) == 0, (tmp_path / "postal.log").read_text()
    assert out.stat().st_mode & 0o777 == 0o600
    with out.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(victims)
    assert {r["family_name"] for r in rows} == names
    assert not list(tmp_path.glob(".letters.csv.partial"))
    again = worker_command(env, tmp_path, "again", "breach", "postal", reference, "--out", str(out))
    assert again.wait(60) == 1  # never overwritten
    with sqlite_store.sessions() as session:
        (event,) = session.scalars(
            select(AuditEvent).where(AuditEvent.action == Tag.BREACH_LETTERS_LISTED)
        ).all()
        assert event.actor_role == "operator"
        assert f"letters:{len(victims)}" in event.resources

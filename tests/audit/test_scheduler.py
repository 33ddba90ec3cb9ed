"""The app signs checkpoints by itself when the chain moved, and not otherwise."""

from __future__ import annotations

import time
from pathlib import Path

from hippocrate.app import create_app
from hippocrate.audit.scheduler import checkpoint_once
from hippocrate.audit.service import append, read_checkpoints, verify
from hippocrate.config import Settings
from hippocrate.runtime import Runtime
from tests.audit.test_trail import event
from tests.conftest import Store
from tests.consultations.helpers import TestClient


def test_the_app_writes_checkpoints_while_it_runs(sqlite_store: Store, tmp_path: Path) -> None:
    checkpoints = tmp_path / "checkpoints.jsonl"
    settings = Settings(
        data_dir=tmp_path, audit_checkpoint_file=checkpoints, audit_checkpoint_seconds=0.2
    )
    runtime = Runtime(settings, sqlite_store.sessions)
    with sqlite_store.sessions.begin() as session:
        append(session, [event(n) for n in range(5)])

    with TestClient(create_app(runtime=runtime)):
        deadline = time.monotonic() + 10
        while not read_checkpoints(checkpoints) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # more ticks: the chain did not move, nothing more is written

    written = read_checkpoints(checkpoints)
    assert [c.seq for c in written] == [5]
    with sqlite_store.sessions() as session:
        report = verify(
            session=session,
            public_key=sqlite_store.sessions.vault.provider.signing_public_key(),
            checkpoint_files=[checkpoints],
        )
    assert (report.ok, report.checkpoints) == (True, 1)
    assert checkpoint_once(runtime) is None  # unchanged head: no new checkpoint
    with sqlite_store.sessions.begin() as session:
        append(session, [event(9)])
    assert checkpoint_once(runtime) == 6

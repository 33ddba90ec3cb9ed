"""Root key rotation survives being killed at any point: a rerun completes it and every
record still decrypts, including in the half-rotated states between the crashes."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from hippocrate.keyring.models import DataKeyRecord, RootRotation
from hippocrate.keyring.rotation import FAULT_KILL_AFTER
from tests.conftest import Store
from tests.keyring.test_rotation import assert_all_readable, make_patients

HIPPOCRATE = str(Path(sys.executable).parent / "hippocrate")


def rotate_command(store: Store, **extra: str) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIPPOCRATE_")}
    env |= {
        "HIPPOCRATE_DATABASE_URL": store.url,
        "HIPPOCRATE_KEY_FILE": str(store.sessions.vault.provider._path),  # type: ignore[attr-defined]
        **extra,
    }
    return [HIPPOCRATE, "keys", "rotate", "--batch-size", "5"], env


def root_versions(store: Store) -> list[int]:
    with store.sessions() as session:
        return sorted(session.scalars(select(DataKeyRecord.root_version)).all())


@pytest.mark.slow
def test_killed_rotation_resumes_and_loses_nothing(store: Store) -> None:
    made = make_patients(store, 40)
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    kills, seen_partial = 0, False

    # Killed by itself after a random number of rewraps: inside a batch, after at least
    # one committed batch. Each run starts a new rotation or resumes the unfinished one.
    for _ in range(4):
        command, env = rotate_command(store, **{FAULT_KILL_AFTER: str(rng.randint(6, 30))})
        result = subprocess.run(command, env=env, capture_output=True, check=False)
        assert result.returncode in (0, -signal.SIGKILL), result.stderr
        kills += result.returncode == -signal.SIGKILL
        seen_partial |= len(set(root_versions(store))) > 1
        assert_all_readable(store, made)
    assert kills > 0
    assert seen_partial  # some crash left data keys under two root versions, all readable

    # Killed from outside at a random moment, wherever it is.
    for _ in range(3):
        command, env = rotate_command(store)
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.0, 0.8))
        process.send_signal(signal.SIGKILL)
        process.communicate()
        assert_all_readable(store, made)

    # A rerun finishes whatever was left.
    command, env = rotate_command(store)
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "finished" in result.stdout
    with store.sessions() as session:
        rotations = session.scalars(select(RootRotation).order_by(RootRotation.id)).all()
    assert all(r.finished_at is not None for r in rotations)
    assert root_versions(store) == [rotations[-1].target_version] * 40
    assert_all_readable(store, made)


def test_a_killed_batch_is_rolled_back_whole(store: Store) -> None:
    made = make_patients(store, 12)
    command, env = rotate_command(store, **{FAULT_KILL_AFTER: "7"})  # in the second batch
    result = subprocess.run(command, env=env, capture_output=True, check=False)
    assert result.returncode == -signal.SIGKILL
    assert root_versions(store) == [1] * 7 + [2] * 5  # first batch committed, second not
    with store.sessions() as session:
        rotation = session.scalars(select(RootRotation)).one()
    assert (rotation.finished_at, rotation.rewrapped) == (None, 5)
    assert_all_readable(store, made)

    command, env = rotate_command(store)
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert "rotation to root key version 2 resumed and finished: 7 data keys" in result.stdout
    assert root_versions(store) == [2] * 12
    assert_all_readable(store, made)

"""Seeding the demo in the test's own process, on a store of the test's own.

Passwords are hashed with the tests' fast parameters (``fast_password_hashing``); the
CLI tests run the real command, which hashes with the production ones.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hippocrate.blobs import FileBlobStore
from hippocrate.config import Settings
from hippocrate.demo.seed import SeedReport, seed_demo
from tests.conftest import Store
from tests.consultations.helpers import settings_for
from tests.identity.helpers import fast_password_hashing


def seed(
    store: Store, tmp_path: Path, *, count: int, seed: int | None = None, **changes: Any
) -> tuple[SeedReport, Settings]:
    """Seed ``count`` patients (and everything around them) and commit."""
    settings = settings_for(tmp_path, store, **changes)
    with fast_password_hashing(), store.sessions.begin() as session:
        report = seed_demo(
            session=session,
            settings=settings,
            blobs=FileBlobStore(settings.blob_dir),
            count=count,
            seed=seed,
            now=datetime.now(UTC),
        )
    return report, settings

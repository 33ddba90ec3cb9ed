"""Seed a database with synthetic patients and write the demo credentials file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from hippocrate.demo.synthetic import SyntheticPatients
from hippocrate.patients.service import create_patient

CREDENTIALS_FILE = "demo-credentials.json"


def seed_patients(*, session: Session, count: int, seed: int | None = None) -> list[dict[str, Any]]:
    """Create ``count`` synthetic patients; returns what a demo user needs to know."""
    generator = SyntheticPatients(seed)
    created = []
    for index in range(count):
        data = generator.patient(with_nir=index % 4 != 3)
        patient = create_patient(session=session, data=data)
        created.append({"id": str(patient.id), "email": data.email})
    return created


def write_credentials(data_dir: Path, credentials: dict[str, Any]) -> Path:
    """Write (or extend) the demo credentials file, readable by its owner only."""
    path = data_dir / CREDENTIALS_FILE
    existing: dict[str, Any] = {}
    if path.exists():
        existing = json.loads(path.read_text(encoding="utf-8"))
    for key, values in credentials.items():
        existing.setdefault(key, []).extend(values)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(existing, handle, indent=2, ensure_ascii=False)
    return path

"""Planting honeytokens: synthetic patients made exactly like real ones.

They are created through the ordinary patient service (same sealing, same key
handling, same kind of data), and only a keyed digest of their ids is stored, in
``guard_markers``: the list is secret to whoever lacks the provider's index key.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hippocrate.guard.models import HoneytokenMarker
from hippocrate.guard.service import Guard
from hippocrate.patients.service import create_patient
from hippocrate.patients.synthetic import SyntheticPatients


def plant(*, session: Session, guard: Guard, count: int, seed: int | None = None) -> int:
    """Create ``count`` honeytoken patients; returns how many were planted."""
    generator = SyntheticPatients(seed)
    for _ in range(count):
        patient = create_patient(session=session, data=generator.patient())
        session.add(HoneytokenMarker(digest=guard.marker(patient.id)))
    session.flush()
    return count


def planted(*, session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(HoneytokenMarker)) or 0)

"""Audit events of the identity domain, tagged ``account:<subject>:<action>`` (``Tag``).

They go through the unit of work's audit recorder (``audit/recorder.py``), so they are
chained with the rest of the trail when it commits, or written as ``aborted`` with the
refusal when it fails. They name the account by id, never by email; an event about a
patient's account carries the patient's id, so it shows in that patient's history.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from hippocrate.audit.recorder import recorder_of
from hippocrate.identity.models import Account
from hippocrate.tags import Outcome, Tag


def record(
    session: Session,
    action: Tag,
    *,
    account: Account | None = None,
    outcome: Outcome = Outcome.ALLOWED,
    now: datetime | None = None,
) -> None:
    """Record ``action`` (about ``account``, if known) in the current unit of work."""
    recorder = recorder_of(session)
    if recorder is None:
        return
    recorder.event(
        action,
        outcome=outcome,
        patient=account.patient_id if account is not None else None,
        resources=(f"account:{account.id}",) if account is not None else (),
        now=now,
    )

"""Questions a breach response asks of the trail, written with its vocabulary.

"Which patients had their NIR or health content read by account X between t1 and t2"
is one call: :func:`patients_touched`. The trail holds ids, tags and categories only,
so answering needs no key and opens nothing sealed; the incident's scope (which
patients, which data) is computed from it (``breach/`` builds on this).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select, union_all
from sqlalchemy.orm import Session

from hippocrate.audit.models import AuditEvent, AuditPending
from hippocrate.tags import READS, Category, Outcome

#: Outcomes of a read whose data was opened: allowed, or opened and then the unit of
#: work failed (``aborted``); a refused read opened nothing.
EXPOSED = (Outcome.ALLOWED, Outcome.ABORTED)


def patients_touched(
    session: Session,
    *,
    categories: Iterable[Category],
    since: datetime,
    until: datetime,
    actor_account_id: uuid.UUID | None = None,
) -> dict[uuid.UUID, frozenset[Category]]:
    """The patients whose data of ``categories`` was read (opened) at ``since`` <= time
    < ``until``, by ``actor_account_id`` (anyone when none, the patients themselves
    included), each with the categories of theirs that were read among those asked.

    Guaranteed: every read of sealed data recorded in the trail counts (sealed
    attributes and attachment bodies, through the API, the CLI or a job), refusals do
    not. Not guaranteed: the trail's integrity; run ``audit verify`` before trusting
    an answer, and mind that a read after the last checkpoint could have been removed.
    """
    wanted = frozenset(categories)
    statements = []
    # The chain's events and those the chainer has not reached yet: no answer waits
    # for the chainer.
    for table in (AuditEvent, AuditPending):
        statement = select(table.patient_id, table.categories).where(
            table.patient_id.is_not(None),
            table.action.in_(sorted(READS)),
            table.outcome.in_(EXPOSED),
            table.at >= since,
            table.at < until,
        )
        if actor_account_id is not None:
            statement = statement.where(table.actor_account_id == actor_account_id)
        statements.append(statement)
    touched: dict[uuid.UUID, set[Category]] = {}
    # Categories are a JSON list: matched here, the same on SQLite and PostgreSQL.
    for patient_id, stored in session.execute(union_all(*statements)):
        hit = {category for category in wanted if category in stored}
        if hit and patient_id is not None:
            touched.setdefault(patient_id, set()).update(hit)
    return {patient: frozenset(found) for patient, found in touched.items()}

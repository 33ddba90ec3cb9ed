"""An incident's scope: which patients, which of their data, computed from the trail.

Two kinds of scope:

- **principals**: given compromised principals (accounts, sessions, CLI operators) and a
  time window, every patient whose data one of them read (opened: allowed, or opened and
  then aborted; a refused read opened nothing), with the categories read and the
  number of records. A session counts as its account over the window: the trail names
  accounts, so the scope of a stolen session is that of its account (never smaller).
- **database copy**: every patient whose record is in the database, with the
  categories stored for them, and what protects them: which fields are sealed, under
  which root key versions, and whether a key could have left with the copy (the file
  provider's key inside the copied folder) or not (an HSM, a key file elsewhere).

Reproducible: a scope is computed over the events up to the chain's head at the moment
it is computed (``seq`` and hash in the scope), so computing it again at that head
gives the same patients in the same order; the scope's canonical JSON is signed with
the audit signing key of the key provider, and :func:`check` verifies it. The
trail holds ids, tags and categories only: computing a scope opens nothing sealed.

Honeytokens in the scope are counted apart (``honeytokens``) and left out of
``patients``: they are the guard's decoys, nobody to notify, and proof that the
principal read what it should not have.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import String, cast, func, select, true, union_all
from sqlalchemy.orm import Session

from hippocrate.audit.checkpoints import HEAD_ID, read_checkpoints
from hippocrate.audit.models import AuditEvent, AuditHead, AuditPending
from hippocrate.audit.scope import EXPOSED
from hippocrate.consultations.models import Attachment, Consultation
from hippocrate.db.base import Base
from hippocrate.db.sealed import SealedModel
from hippocrate.keyring.models import DataKeyRecord, KeyState
from hippocrate.patients.models import Patient, PatientStatus
from hippocrate.tags import READS, Category, Tag
from hippocrate.vault.providers.base import KeyProvider
from hippocrate.vault.signatures import verify_signature

SCOPE_CONTEXT = b"hippocrate.scope.v1\x00"

#: The categories of a patient's data a scope reports (credentials and the rest are
#: the platform's, not the patient's record).
PATIENT_CATEGORIES = (
    Category.IDENTITY,
    Category.CONTACT,
    Category.NIR,
    Category.HEALTH,
    Category.ATTACHMENT,
)


@dataclass(frozen=True)
class Exposure:
    categories: frozenset[Category]
    records: int


@dataclass
class Scope:
    """Who was affected and how, at the chain's head (``head_seq``, ``head_hash``)."""

    kind: str  # "principals" or "database-copy"
    computed_at: datetime
    head_seq: int
    head_hash: str
    parameters: dict[str, Any]
    patients: dict[uuid.UUID, Exposure]
    honeytokens: int
    #: Containments of these principals because they touched a honeytoken (the read
    #: was refused before anything was opened, so no patient is named for it).
    honeytoken_containments: int = 0
    protection: dict[str, Any] = field(default_factory=dict)
    #: The last signed checkpoint of the chain at or before the head (``tie``): whoever
    #: checks the scope checks the trail it was computed from against it.
    checkpoint: dict[str, Any] | None = None
    signature: str | None = None

    def counts(self) -> dict[str, int]:
        counts = {
            "patients": len(self.patients),
            "honeytokens": self.honeytokens,
            "honeytoken_containments": self.honeytoken_containments,
        }
        for category in PATIENT_CATEGORIES:
            counts[category.value] = sum(
                1 for e in self.patients.values() if category in e.categories
            )
        counts["records"] = sum(e.records for e in self.patients.values())
        return counts

    def as_dict(self, *, with_patients: bool = True) -> dict[str, Any]:
        document: dict[str, Any] = {
            "kind": self.kind,
            "computed_at": self.computed_at.isoformat(),
            "head": {"seq": self.head_seq, "hash": self.head_hash},
            "parameters": self.parameters,
            "counts": self.counts(),
            "protection": self.protection,
            "checkpoint": self.checkpoint,
        }
        if with_patients:
            document["patients"] = [
                {
                    "id": str(patient),
                    "categories": sorted(c.value for c in exposure.categories),
                    "records": exposure.records,
                }
                for patient, exposure in sorted(self.patients.items(), key=lambda p: str(p[0]))
            ]
        if self.signature is not None:
            document["signature"] = self.signature
        return document

    def payload(self) -> bytes:
        """What the signature covers: the canonical JSON of the whole scope."""
        unsigned = {k: v for k, v in self.as_dict().items() if k != "signature"}
        canonical = json.dumps(unsigned, sort_keys=True, separators=(",", ":"))
        return SCOPE_CONTEXT + canonical.encode("utf-8")


def head_of(session: Session) -> tuple[int, str]:
    head = session.get(AuditHead, HEAD_ID)
    if head is None:
        return 0, (b"\x00" * 32).hex()
    return head.seq, head.hash.hex()


def of_principals(
    session: Session,
    *,
    principals: Iterable[uuid.UUID],
    since: datetime,
    until: datetime | None,
    now: datetime,
    is_honeytoken: Callable[[uuid.UUID], bool],
    head_seq: int | None = None,
) -> Scope:
    """The patients whose data ``principals`` read at ``since`` <= time < ``until`` (no
    end when none: everything up to the head), over the events up to ``head_seq`` (the
    current head when none)."""
    accounts = sorted(set(principals), key=str)
    # The current scope reads the whole chain and the events the chainer has not
    # reached yet, in one statement (one snapshot: the chainer moves events from one to
    # the other atomically), so a scope computed the moment a thief is contained counts
    # every read they committed; the head is read after, so it covers every chained
    # event counted (the pending ones will be chained after it). An earlier scope
    # (``head_seq``) reads the chain up to there.
    tables: list[tuple[Any, Any]]
    if head_seq is None:
        tables = [(AuditEvent, true()), (AuditPending, true())]
    else:
        tables = [(AuditEvent, AuditEvent.seq <= head_seq)]
    reads = [
        select(table.patient_id, table.categories, table.resources).where(
            table.actor_account_id.in_(accounts),
            table.patient_id.is_not(None),
            table.action.in_(sorted(READS)),
            table.outcome.in_(EXPOSED),
            table.at >= since,
            within,
            *([table.at < until] if until is not None else []),
        )
        for table, within in tables
    ]
    statement = union_all(*reads).execution_options(yield_per=10_000)
    categories: dict[uuid.UUID, set[Category]] = {}
    records: dict[uuid.UUID, set[str]] = {}
    wanted = {c.value: c for c in PATIENT_CATEGORIES}
    for patient_id, stored, resources in session.execute(statement):
        assert patient_id is not None
        found = categories.setdefault(patient_id, set())
        found.update(wanted[c] for c in stored if c in wanted)
        records.setdefault(patient_id, set()).update(resources)
    containments = union_all(
        *(
            select(table.at)
            .where(
                table.actor_account_id.in_(accounts),
                table.action == Tag.GUARD_PRINCIPAL_CONTAINED,
                table.at >= since,
                within,
                *([table.at < until] if until is not None else []),
            )
            .where(_names(table.resources, "reason:honeytoken"))
            for table, within in tables
        )
    ).subquery()
    trips = session.scalar(select(func.count()).select_from(containments))
    current_seq, current_hash = head_of(session)
    seq = current_seq if head_seq is None else min(head_seq, current_seq)
    head_hash = current_hash if seq == current_seq else _hash_at(session, seq)
    patients: dict[uuid.UUID, Exposure] = {}
    decoys = 0
    for patient_id, found in categories.items():
        if is_honeytoken(patient_id):
            decoys += 1
            continue
        patients[patient_id] = Exposure(frozenset(found), len(records[patient_id]))
    return Scope(
        kind="principals",
        computed_at=now,
        head_seq=seq,
        head_hash=head_hash,
        parameters={
            "principals": [str(a) for a in accounts],
            "since": since.isoformat(),
            "until": until.isoformat() if until is not None else None,
        },
        patients=patients,
        honeytokens=decoys,
        honeytoken_containments=int(trips or 0),
    )


def of_database_copy(
    session: Session,
    *,
    now: datetime,
    is_honeytoken: Callable[[uuid.UUID], bool],
    key_location: dict[str, Any],
) -> Scope:
    """Every patient in the database and what a copy of it holds of them.

    ``key_location`` says where the keys are (``keys_location`` computes it from the
    settings): whether a key could have left with the copy decides Art. 34(3)(a).
    """
    seq, head_hash = head_of(session)
    stored = _stored_categories(session)
    patients: dict[uuid.UUID, Exposure] = {}
    decoys = 0
    live = select(Patient.id).where(Patient.status != PatientStatus.SHREDDED)
    for patient_id in session.scalars(live.order_by(Patient.id)):
        if is_honeytoken(patient_id):
            decoys += 1
            continue
        found = stored.get(patient_id, set()) | {Category.IDENTITY, Category.CONTACT}
        patients[patient_id] = Exposure(frozenset(found), 1)
    return Scope(
        kind="database-copy",
        computed_at=now,
        head_seq=seq,
        head_hash=head_hash,
        parameters={},
        patients=patients,
        honeytokens=decoys,
        protection={
            "sealed_fields": sealed_fields(),
            "root_key_versions": root_key_versions(session),
            "keys": key_location,
        },
    )


def sealed_fields() -> list[dict[str, str]]:
    """Every sealed attribute of every model: table, column, category."""
    fields = []
    for mapper in Base.registry.mappers:
        model = mapper.class_
        if not issubclass(model, SealedModel):
            continue
        table = getattr(model, "__tablename__", "?")
        for name, sealed in sorted(model.__sealed_fields__.items()):
            fields.append(
                {
                    "table": table,
                    "field": name,
                    "column": sealed.column_attr,
                    "category": sealed.category.value,
                }
            )
    return sorted(fields, key=lambda f: (f["table"], f["field"]))


def root_key_versions(session: Session) -> dict[str, int]:
    """How many live data keys are wrapped under each root key version."""
    rows = session.execute(
        select(DataKeyRecord.root_version, func.count())
        .where(DataKeyRecord.state != KeyState.DESTROYED)
        .group_by(DataKeyRecord.root_version)
        .order_by(DataKeyRecord.root_version)
    )
    return {str(version): count for version, count in rows}


def keys_location(
    *, provider_kind: str, key_file: Path | None, copied: Iterable[Path]
) -> dict[str, Any]:
    """Whether the root keys could have left with a copy of ``copied`` folders.

    With an HSM they cannot (not extractable). With the file provider they left when
    the key file lies inside one of the copied folders (the embedded default keeps the
    SQLite file and the key file under the same data folder).
    """
    if provider_kind != "file" or key_file is None:
        return {"provider": provider_kind, "could_have_left": False, "why": "held by the HSM"}
    key = key_file.resolve()
    inside = [str(folder) for folder in copied if key.is_relative_to(folder.resolve())]
    if inside:
        return {
            "provider": "file",
            "could_have_left": True,
            "why": "the key file lies inside the copied folder",
        }
    return {
        "provider": "file",
        "could_have_left": False,
        "why": "the key file lies outside the copied folders",
    }


def tie(scope: Scope, checkpoint_files: Iterable[Path]) -> Scope:
    """Name in ``scope`` the last signed checkpoint at or before its head (from the first
    checkpoint file that has one): the scope is then tied to a state of the trail that
    ``hippocrate audit verify`` checks. None when no checkpoint was signed yet."""
    for path in checkpoint_files:
        try:
            lines = read_checkpoints(path)
        except (OSError, ValueError):
            continue
        covered = [c for c in lines if c.seq <= scope.head_seq]
        if covered:
            last = covered[-1]
            scope.checkpoint = {
                "seq": last.seq,
                "head": last.head.hex(),
                "at": last.at.isoformat(),
                "signature": last.signature.hex(),
            }
            return scope
    return scope


def sign(scope: Scope, provider: KeyProvider) -> Scope:
    """``scope`` signed with the provider's audit signing key."""
    scope.signature = None
    scope.signature = base64.b64encode(provider.sign(scope.payload())).decode("ascii")
    return scope


def check(document: dict[str, Any], public_key: bytes) -> bool:
    """Whether ``document`` (a signed scope's ``as_dict``) is unchanged since signed."""
    signature = document.get("signature")
    if not isinstance(signature, str):
        return False
    unsigned = {k: v for k, v in document.items() if k != "signature"}
    canonical = json.dumps(unsigned, sort_keys=True, separators=(",", ":"))
    try:
        raw = base64.b64decode(signature, validate=True)
    except ValueError:
        return False
    return verify_signature(public_key, SCOPE_CONTEXT + canonical.encode("utf-8"), raw)


def _names(column: Any, resource: str) -> Any:
    """Whether the JSON list ``column`` holds ``resource``, on SQLite and PostgreSQL:
    the list's JSON text holds it quoted (resources are ids and ``name:value`` tags,
    never containing a quote)."""
    return cast(column, String).contains(json.dumps(resource))


def _hash_at(session: Session, seq: int) -> str:
    if seq == 0:
        return (b"\x00" * 32).hex()
    found = session.scalar(select(AuditEvent.hash).where(AuditEvent.seq == seq))
    return found.hex() if found is not None else ""


def _stored_categories(session: Session) -> dict[uuid.UUID, set[Category]]:
    """What a copy holds of each patient beyond identity and contact, from which sealed
    columns are set (a set column is visible in a copy, even sealed)."""
    stored: dict[uuid.UUID, set[Category]] = {}
    nir = Patient.__sealed_fields__.get("nir")
    if nir is not None:
        column = getattr(Patient, nir.column_attr)
        for (patient_id,) in session.execute(select(Patient.id).where(column.is_not(None))):
            stored.setdefault(patient_id, set()).add(Category.NIR)
    for (patient_id,) in session.execute(select(Consultation.patient_id).distinct()):
        stored.setdefault(patient_id, set()).add(Category.HEALTH)
    for (patient_id,) in session.execute(select(Attachment.patient_id).distinct()):
        stored.setdefault(patient_id, set()).add(Category.ATTACHMENT)
    return stored

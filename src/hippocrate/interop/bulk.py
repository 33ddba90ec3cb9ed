"""One batch of an import written whole: the bulk form of ``invite_imported_patient``.

Same guarantees as importing row by row, with a fixed number of statements per batch
instead of eleven per patient:

- every row is validated as a registration is, and refused with one line (row, field,
  reason) before anything of it is written;
- duplicates are refused within the batch (the same address or NIR twice) and against
  the platform: the batch's blind indexes are looked up with one ``IN`` query per
  table, and each candidate is confirmed by decryption, as ``unsafe_find_by`` and
  ``unsafe_account_by_email`` do one at a time. Blind indexes are truncated (24 bits
  for an address, 20 for a NIR), so no unique constraint can arbitrate between
  processes: on PostgreSQL each batch takes a transaction-scoped advisory lock per
  blind index value it inserts, in one order, before its lookup, so two importing
  processes holding the same address or NIR run one after the other and the second
  finds the first's rows;
- each patient gets a new data key of its own, wrapped by the key provider and bound
  to its id (the batch's keys are made and wrapped in one call to the provider,
  ``Vault.new_data_keys``, each with its own nonce and binding), which seals the
  record, the account and the invitation's code, each field bound to its table,
  column and row (``db.sealed``'s format, padding and blind indexes);
- patients, data keys, accounts and invitations go in with one statement per table
  for the whole batch: a binary ``COPY`` on PostgreSQL, an executemany ``INSERT`` on
  SQLite, the same values either way (:func:`insert_rows`); every sealed write is
  noted to the unit's recorder (once per row and data category: the recorder keeps one
  event per patient, subject and verb), which appends the batch's events to the trail
  when the unit commits;
- invitations are queued, not delivered: the record of the email is written (with its
  sealed code) and the delivery worker (``identity.service.send_invitations``) sends
  it with a fresh link later, outside the importing process.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Dialect, Table, insert, inspect, or_, select, text
from sqlalchemy.orm import Session

from hippocrate.db.sealed import Sealed, SealedModel, require_hook, vault_of
from hippocrate.identity import passwords
from hippocrate.identity.models import Account, AccountStatus, Role
from hippocrate.identity.service import INVITATION_TEMPLATE
from hippocrate.keyring.models import DataKeyRecord, KeyState
from hippocrate.notify.models import OutboundEmail
from hippocrate.notify.service import new_code
from hippocrate.patients.errors import InconsistentIdentity
from hippocrate.patients.models import Patient, PatientStatus
from hippocrate.patients.schemas import PatientCreate
from hippocrate.patients.service import check_identity
from hippocrate.tags import Category, Verb
from hippocrate.vault import DataKey, DecryptionError, FieldContext, seal_field

ALREADY_REGISTERED = "already registered on the platform"

#: Namespaces of the advisory locks (PostgreSQL's two-integer form): one per indexed
#: field, so an address index and a NIR index of the same value are distinct locks.
_LOCK_EMAIL = 0x48490001
_LOCK_NIR = 0x48490002


@dataclass(frozen=True)
class Candidate:
    """A validated row of the batch, with its blind indexes."""

    row: int
    data: PatientCreate
    email_index: int
    nir_index: int | None


@dataclass(frozen=True)
class Refusal:
    row: int
    field: str
    reason: str


def admit(
    session: Session, rows: Sequence[tuple[int, PatientCreate]]
) -> tuple[list[Candidate], list[Refusal]]:
    """The rows that may be imported, and the others with why: an identity that
    contradicts itself, an address or NIR given twice in the batch (the first wins) or
    already held on the platform. Nothing is written; on PostgreSQL the advisory locks
    of the admitted rows' indexes are held until the caller's transaction ends."""
    vault = vault_of(session)
    refused: list[Refusal] = []
    fresh: list[Candidate] = []
    emails: dict[str, int] = {}
    nirs: dict[str, int] = {}
    for row, data in rows:
        try:
            check_identity(data)
        except InconsistentIdentity as exc:
            refused.append(Refusal(row, "nir", str(exc)))
            continue
        if data.email in emails:
            refused.append(Refusal(row, "email", f"the address of row {emails[data.email]} again"))
            continue
        if data.nir and data.nir in nirs:
            refused.append(Refusal(row, "nir", f"the NIR of row {nirs[data.nir]} again"))
            continue
        emails[data.email] = row
        if data.nir:
            nirs[data.nir] = row
        fresh.append(
            Candidate(
                row,
                data,
                vault.blind_index("email", data.email),
                vault.blind_index("nir", data.nir) if data.nir else None,
            )
        )
    if not fresh:
        return [], refused
    _lock(session, fresh)
    taken_emails, taken_nirs = unsafe_held(session, fresh)
    admitted = []
    for candidate in fresh:
        if candidate.data.email in taken_emails:
            refused.append(Refusal(candidate.row, "email", ALREADY_REGISTERED))
        elif candidate.data.nir and candidate.data.nir in taken_nirs:
            refused.append(Refusal(candidate.row, "nir", ALREADY_REGISTERED))
        else:
            admitted.append(candidate)
    return admitted, refused


def _lock(session: Session, candidates: Sequence[Candidate]) -> None:
    """PostgreSQL: one transaction-scoped advisory lock per blind index value, taken in
    ascending order (two batches never wait on each other in a cycle). SQLite has one
    writer at a time: only one importing process is allowed there."""
    if session.get_bind().dialect.name != "postgresql":
        return
    keys = {(_LOCK_EMAIL, c.email_index) for c in candidates}
    keys |= {(_LOCK_NIR, c.nir_index) for c in candidates if c.nir_index is not None}
    ordered = sorted(keys)
    # PostgreSQL evaluates a volatile select list after the sort: locks in that order.
    session.execute(
        text(
            "SELECT count(pg_advisory_xact_lock(ns, k)) FROM ("
            "SELECT ns, k FROM unnest(CAST(:ns AS integer[]), CAST(:k AS integer[])) AS t(ns, k)"
            " ORDER BY ns, k) AS ordered"
        ),
        {"ns": [ns for ns, _ in ordered], "k": [k for _, k in ordered]},
    )


def unsafe_held(session: Session, candidates: Sequence[Candidate]) -> tuple[set[str], set[str]]:
    """The batch's addresses and NIRs already held: by an account (not deleted, not
    pending) or by an active patient whose account is not pending, as the row-by-row
    checks define it; candidates of each index confirmed by decryption.

    Unsafe, it skips the access policy, as ``unsafe_account_by_email`` and
    ``unsafe_find_by`` do one row at a time: the importer (an operator's command, under
    its purpose) opens each candidate's address or NIR only to compare it with the
    row's, and shows nothing of it: the report says "already registered", no more."""
    emails = {c.data.email for c in candidates}
    nirs = {c.data.nir for c in candidates if c.data.nir}
    email_indexes = sorted({c.email_index for c in candidates})
    nir_indexes = sorted({c.nir_index for c in candidates if c.nir_index is not None})
    taken_emails: set[str] = set()
    taken_nirs: set[str] = set()
    with session.no_autoflush:
        accounts = session.scalars(
            select(Account).where(
                Account.email_index.in_(email_indexes),
                Account.status.not_in((AccountStatus.DELETED, AccountStatus.PENDING)),
            )
        ).all()
        for account in accounts:
            found = _opened(account, "email")
            if found in emails:
                taken_emails.add(found)
        pending = (
            select(Account.patient_id)
            .where(Account.status == AccountStatus.PENDING, Account.patient_id.is_not(None))
            .scalar_subquery()
        )
        matches: ColumnElement[bool] = Patient.email_index.in_(email_indexes)
        if nir_indexes:
            matches = or_(matches, Patient.nir_index.in_(nir_indexes))
        patients = session.scalars(
            select(Patient).where(
                matches, Patient.status == PatientStatus.ACTIVE, Patient.id.not_in(pending)
            )
        ).all()
        email_set, nir_set = set(email_indexes), set(nir_indexes)
        for patient in patients:
            if patient.email_index in email_set:
                found = _opened(patient, "email")
                if found in emails:
                    taken_emails.add(found)
            if patient.nir_index is not None and patient.nir_index in nir_set:
                nir = _opened(patient, "nir")
                if nir in nirs:
                    taken_nirs.add(nir)
    return taken_emails, taken_nirs


def _opened(instance: SealedModel, name: str) -> str | None:
    try:
        value = getattr(instance, name)
    except DecryptionError:
        return None  # a shredded or unreadable candidate holds nothing
    return value if isinstance(value, str) else None


# -- writing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Written:
    patient_id: uuid.UUID
    account_id: uuid.UUID


@dataclass(frozen=True)
class BatchRows:
    """The rows of a batch, by table, as :func:`insert_rows` takes them."""

    patients: list[dict[str, Any]]
    keys: list[dict[str, Any]]
    accounts: list[dict[str, Any]]
    emails: list[dict[str, Any]]
    written: list[Written]

    def by_table(self) -> list[tuple[type, list[dict[str, Any]]]]:
        """Parents first: data keys, accounts and invitations refer to their patient."""
        return [
            (Patient, self.patients),
            (DataKeyRecord, self.keys),
            (Account, self.accounts),
            (OutboundEmail, self.emails),
        ]


def write(session: Session, candidates: Sequence[Candidate], now: datetime) -> list[Written]:
    """Patients, their data keys, accounts and queued invitations of ``candidates``
    (admitted by :func:`admit` in this transaction): one statement per table, a
    ``COPY`` on PostgreSQL (:func:`insert_rows`)."""
    batch = rows_of(session, candidates, now)
    for model, rows in batch.by_table():
        insert_rows(session, model, rows)
    return batch.written


def rows_of(session: Session, candidates: Sequence[Candidate], now: datetime) -> BatchRows:
    """The rows :func:`write` inserts: each patient with a data key of its own (made
    and wrapped for the whole batch in one call to the key provider, each bound to its
    patient's id), every field sealed under it, and each sealed write noted to the
    session's recorder (so that the trail records it when the unit commits)."""
    patient_ids = [uuid.uuid4() for _ in candidates]
    # An empty batch asks nothing of the provider: new_data_keys([]) is [].
    # One call to the key provider for the batch; each key bound to its patient's id.
    made = vault_of(session).new_data_keys(patient_ids, 1)
    patients: list[dict[str, Any]] = []
    keys: list[dict[str, Any]] = []
    accounts: list[dict[str, Any]] = []
    emails: list[dict[str, Any]] = []
    written = []
    for candidate, patient_id, (wrapped, key) in zip(candidates, patient_ids, made, strict=True):
        data = candidate.data
        account_id, email_id = uuid.uuid4(), uuid.uuid4()
        # The blind indexes admit computed for the duplicate lookup, not made again.
        known = {("email", data.email): candidate.email_index}
        if data.nir and candidate.nir_index is not None:
            known[("nir", data.nir)] = candidate.nir_index
        keys.append(
            {
                "owner_id": patient_id,
                "version": wrapped.version,
                "root_version": wrapped.root_version,
                "wrapped": wrapped.blob,
                "state": KeyState.ACTIVE,
                "created_at": now,
                "destroyed_at": None,
            }
        )
        patient = {
            "id": patient_id,
            "status": PatientStatus.ACTIVE,
            "created_at": now,
            "updated_at": now,
        }
        patient |= sealed_columns(
            session,
            Patient,
            row_id=patient_id,
            audit_patient=patient_id,
            key=key,
            values={
                "given_names": data.given_names,
                "family_name": data.family_name,
                "birth_date": data.birth_date,
                "sex": data.sex,
                "email": data.email,
                "phone": data.phone,
                "address": data.address.model_dump(),
                "nir": data.nir,
            },
            known_indexes=known,
        )
        patients.append(patient)
        account = {
            "id": account_id,
            "role": Role.PATIENT,
            "status": AccountStatus.ACTIVE,
            "owner_id": patient_id,
            "patient_id": patient_id,
            "totp_enabled": False,
            "totp_last_step": None,
            "email_verified_at": None,
            "failed_logins": 0,
            "locked_until": None,
            "mfa_failures": 0,
            "mfa_locked_at": None,
            "last_login_at": None,
            "disabled_reason": None,
            "created_at": now,
            "updated_at": now,
        }
        account |= sealed_columns(
            session,
            Account,
            row_id=account_id,
            audit_patient=patient_id,
            key=key,
            values={
                "email": data.email,
                "password_hash": passwords.placeholder_hash(),
                "totp_secret": None,
                "recovery_codes": None,
            },
            known_indexes=known,
        )
        accounts.append(account)
        email = {
            "id": email_id,
            "account_id": account_id,
            "owner_id": patient_id,
            "template": INVITATION_TEMPLATE,
            "created_at": now,
            "sent_at": None,
            "failed_at": None,
        }
        # A new account has no message yet: any code is unlike its latest ones.
        email |= sealed_columns(
            session,
            OutboundEmail,
            row_id=email_id,
            audit_patient=None,
            key=key,
            values={"verification_code": new_code()},
        )
        emails.append(email)
        written.append(Written(patient_id, account_id))
    return BatchRows(patients, keys, accounts, emails, written)


def sealed_columns(
    session: Session,
    model: type[SealedModel],
    *,
    row_id: uuid.UUID,
    audit_patient: uuid.UUID | None,
    key: DataKey,
    values: dict[str, Any],
    known_indexes: Mapping[tuple[str, str], int] | None = None,
) -> dict[str, Any]:
    """The columns of ``values`` (sealed attributes of ``model`` by name) as the store
    would write them at a flush: each sealed under ``key`` for (table, column,
    ``row_id``) with the attribute's padding, its blind index beside it (taken from
    ``known_indexes``, by index field and value, when the caller computed it already),
    and the write noted to the session's recorder: one note per data category of the
    row, since the recorder keeps one event per patient, subject and verb with the set
    of its resources and categories (a note per field recorded the same event)."""
    hook = require_hook(session, Verb.WRITE, model.__name__)
    vault = vault_of(session)
    subject = model.__audit_subject__
    resource = f"{subject.noun}:{row_id}"
    noted: set[Category] = set()
    out: dict[str, Any] = {}
    for name, value in values.items():
        field: Sealed[Any] = model.__sealed_fields__[name]
        table, column, index_column = _columns(model, name)
        if value is None:
            out[column] = None
            if index_column is not None:
                out[index_column] = None
            continue
        if field.category not in noted:
            noted.add(field.category)
            hook.note(
                patient=audit_patient,
                subject=subject,
                verb=Verb.WRITE,
                resource=resource,
                category=field.category,
            )
        context = FieldContext(table, column, row_id)
        out[column] = seal_field(key, field.codec.encode(value), context, field.pad)
        if index_column is not None:
            assert field.index_field is not None
            normalised = str(value)
            found = (
                None
                if known_indexes is None
                else known_indexes.get((field.index_field, normalised))
            )
            out[index_column] = (
                found if found is not None else vault.blind_index(field.index_field, normalised)
            )
    return out


# -- inserting -------------------------------------------------------------------------


def insert_rows(session: Session, model: type, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (column name to value, the same columns in each) into ``model``'s
    table in the session's transaction: a binary ``COPY`` on PostgreSQL, an
    executemany ``INSERT`` elsewhere (SQLite). Both write the same values: each goes
    through its column type's bind processing (enums to their stored value,
    timestamps checked timezone-aware and made UTC) before it is sent.

    COPY costs the importing process about a fifth of the executemany pipeline per row
    (no statement per row to bind, dump and parse; docs/BENCHMARKS.md), and fires no
    ORM or Core event, as an executemany of a Core ``INSERT`` fires none either: what
    the store must know of a sealed write is told by :func:`sealed_columns`."""
    if not rows:
        return
    table = _table(model)
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        session.execute(insert(table), list(rows))
        return
    session.flush()  # what is pending goes first, as an INSERT's autoflush would send it
    plan = _copy_plan(table, tuple(rows[0]), connection.dialect)
    raw = connection.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cursor, cursor.copy(plan.statement) as copy:
        copy.set_types(plan.types)
        names, processors = plan.names, plan.processors
        for row in rows:
            copy.write_row(
                [
                    value if process is None else process(value)
                    for process, value in zip(processors, (row[n] for n in names), strict=True)
                ]
            )


@dataclass(frozen=True)
class _CopyPlan:
    statement: str
    names: tuple[str, ...]
    types: list[str]
    processors: list[Callable[[Any], Any] | None]


#: PostgreSQL's type of each column type the bulk tables use, by its DDL name: a
#: column of another type is a programming error, refused before anything is sent.
_COPY_TYPES = {
    "UUID": "uuid",
    "VARCHAR": "varchar",
    "BYTEA": "bytea",
    "INTEGER": "int4",
    "BOOLEAN": "bool",
    "TIMESTAMP WITH TIME ZONE": "timestamptz",
}

_COPY_PLANS: dict[tuple[str, tuple[str, ...]], _CopyPlan] = {}


def _copy_plan(table: Table, names: tuple[str, ...], dialect: Dialect) -> _CopyPlan:
    found = _COPY_PLANS.get((table.name, names))
    if found is not None:
        return found
    columns = [table.columns[name] for name in names]
    types = []
    for column in columns:
        ddl = column.type.compile(dialect=dialect)
        kind = _COPY_TYPES.get(ddl.split("(")[0])
        if kind is None:
            raise TypeError(f"no COPY type for {table.name}.{column.name} ({ddl})")
        types.append(kind)
    quoted = ", ".join(dialect.identifier_preparer.quote(c.name) for c in columns)
    plan = _CopyPlan(
        statement=(
            f"COPY {dialect.identifier_preparer.format_table(table)} ({quoted})"
            " FROM STDIN (FORMAT BINARY)"
        ),
        names=names,
        types=types,
        processors=[c.type.dialect_impl(dialect).bind_processor(dialect) for c in columns],
    )
    _COPY_PLANS[(table.name, names)] = plan
    return plan


_COLUMNS: dict[tuple[type[SealedModel], str], tuple[str, str, str | None]] = {}


def _columns(model: type[SealedModel], name: str) -> tuple[str, str, str | None]:
    """(table, column of the ciphertext, column of the blind index) of a sealed
    attribute: what ``Sealed.context`` binds the ciphertext to."""
    found = _COLUMNS.get((model, name))
    if found is None:
        found = _COLUMNS[(model, name)] = _columns_of(model, name)
    return found


def _columns_of(model: type[SealedModel], name: str) -> tuple[str, str, str | None]:
    field = model.__sealed_fields__[name]
    mapper = inspect(model)
    column = mapper.get_property(field.column_attr).columns[0]
    index = mapper.get_property(field.blind_index).columns[0].name if field.blind_index else None
    return column.table.name, column.name, index


def _table(model: type) -> Table:
    return cast(Table, model.__table__)  # type: ignore[attr-defined]

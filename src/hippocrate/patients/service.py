"""Operations on patients. Keyword-only arguments; nothing here commits."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, exists, select, update
from sqlalchemy.orm import Session

from hippocrate.access import policy
from hippocrate.access.models import BreakGlassGrant
from hippocrate.access.principal import Principal
from hippocrate.blobs import BlobStore, delete_after_commit
from hippocrate.config import Settings
from hippocrate.consultations.models import (
    Attachment,
    CareRelationship,
    Consultation,
)
from hippocrate.db.sealed import vault_of
from hippocrate.i18n import _n
from hippocrate.identifiers import nir_matches_identity
from hippocrate.identity.models import Account, AccountStatus
from hippocrate.identity.sessions import end_sessions_of, unsafe_get_account
from hippocrate.identity.signin import reauthenticate
from hippocrate.keyring.service import destroy_keys
from hippocrate.notify.service import send, unsafe_account_to_notify, unsafe_patient_account
from hippocrate.patients.errors import (
    DuplicatePatient,
    InconsistentIdentity,
    PatientNotFound,
    PatientShredded,
)
from hippocrate.patients.models import Patient, PatientStatus
from hippocrate.patients.schemas import Address, PatientCreate, PatientRead

_INDEXED = {"email": Patient.email_index, "phone": Patient.phone_index, "nir": Patient.nir_index}


def check_identity(data: PatientCreate) -> None:
    """``InconsistentIdentity`` if the NIR contradicts the sex or birth date given."""
    if (
        data.nir
        and data.sex in ("F", "M")
        and not nir_matches_identity(
            data.nir,
            sex=data.sex,
            birth_year=data.birth_date.year,
            birth_month=data.birth_date.month,
        )
    ):
        raise InconsistentIdentity(_n("the NIR does not match the sex and birth date given"))


def create_patient(*, session: Session, data: PatientCreate, pending: bool = False) -> Patient:
    """Register a patient; every field is sealed at flush. Raises ``DuplicatePatient``
    if the email (or, unless ``pending``, the NIR) is already registered,
    ``InconsistentIdentity`` if the NIR contradicts the sex or birth date.

    ``pending`` is for a registration whose address is not verified yet: its NIR is
    kept, sealed, but not checked, and it holds nothing while its account is pending
    (:func:`unsafe_find_by` skips it); :func:`unsafe_settle_nir` decides at
    verification whether it keeps the NIR. A squatter cannot hold a NIR that way.
    """
    check_identity(data)
    if unsafe_find_by(session=session, field="email", value=data.email):
        raise DuplicatePatient("email")
    if data.nir and not pending and unsafe_find_by(session=session, field="nir", value=data.nir):
        raise DuplicatePatient("NIR")
    patient = Patient(id=uuid.uuid4(), status=PatientStatus.ACTIVE)
    patient.given_names = data.given_names
    patient.family_name = data.family_name
    patient.birth_date = data.birth_date
    patient.sex = data.sex
    patient.email = data.email
    patient.phone = data.phone
    patient.address = data.address.model_dump()
    patient.nir = data.nir
    session.add(patient)
    session.flush()
    return patient


def unsafe_settle_nir(*, session: Session, patient: Patient) -> Patient | None:
    """At the verification of ``patient``'s address: if another patient already holds
    its NIR, remove the NIR from ``patient`` (the first verified holder keeps it) and
    return that holder; else None. Unsafe like :func:`unsafe_find_by`; the caller
    records the conflict and never tells the registrant."""
    nir = patient.nir
    if nir is None:
        return None
    holders = [
        p for p in unsafe_find_by(session=session, field="nir", value=nir) if p.id != patient.id
    ]
    if not holders:
        return None
    patient.nir = None
    return holders[0]


def unsafe_find_by(*, session: Session, field: str, value: str) -> Sequence[Patient]:
    """Patients whose ``field`` (email, phone or NIR) equals the normalised ``value``.

    The blind index narrows the candidates; each is confirmed by decryption, so a
    truncated-index collision never returns the wrong patient.

    A patient whose account is pending (a registration whose address is not verified)
    is never returned: it holds neither its address nor its NIR, so nobody can block a
    real owner by registering their details without the mailbox.

    Unsafe, it skips the access policy: registration's duplicate check must look among
    every patient before the new one has a principal, and answers only "taken" (as
    :class:`DuplicatePatient`), never who. Also for tests. The candidates' fields still
    open only in an audited session.
    """
    column = _INDEXED[field]
    index = vault_of(session).blind_index(field, value)
    pending = exists().where(
        Account.patient_id == Patient.id, Account.status == AccountStatus.PENDING
    )
    candidates = session.scalars(
        select(Patient).where(column == index, Patient.status == PatientStatus.ACTIVE, ~pending)
    ).all()
    return [p for p in candidates if getattr(p, field) == value]


def unsafe_get_patient(*, session: Session, patient_id: uuid.UUID) -> Patient:
    """One patient by id, whoever asks: unsafe, it skips the access policy. For the
    operator's maintenance commands (data key rotation) and tests; a reader's path is
    :func:`readable_record`. Its fields still open only in an audited session."""
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise PatientNotFound(patient_id)
    if patient.status is PatientStatus.SHREDDED:
        raise PatientShredded()
    return patient


def to_read(patient: Patient) -> PatientRead:
    """Open every field of ``patient`` into the shape shown to an allowed reader."""
    address = patient.address
    return PatientRead(
        id=patient.id,
        given_names=patient.given_names or "",
        family_name=patient.family_name or "",
        birth_date=patient.birth_date,
        sex=patient.sex,
        email=patient.email or "",
        phone=patient.phone or "",
        address=Address.model_validate(address),
        nir_masked=PatientRead.mask(patient.nir),
        created_at=patient.created_at,
    )


def shred_patient(*, session: Session, patient_id: uuid.UUID) -> None:
    """Crypto-shred a patient: destroy their data keys and clear the blind indexes; the
    ciphertext stays, unreadable.

    Once committed nothing of theirs can be decrypted again, by anyone, from this
    database or any copy of it whose root key versions are retired.
    """
    # Plaintext columns only: shredding opens nothing of the patient.
    if session.scalar(select(Patient.id).where(Patient.id == patient_id)) is None:
        raise PatientNotFound(patient_id)
    destroy_keys(session=session, owner=patient_id)
    session.execute(
        update(Patient)
        .where(Patient.id == patient_id)
        .values(status=PatientStatus.SHREDDED, email_index=None, phone_index=None, nir_index=None)
    )


# -- the patient's own account ---------------------------------------------------------

EXPORT_FORMAT = "hippocrate.export.v1"


def own_record(*, session: Session, principal: Principal, now: datetime) -> Patient:
    """The principal's own patient record (``NotFound`` for staff)."""
    return policy.get_readable(
        session,
        policy.readable_patients(principal, now=now),
        Patient,
        policy.own_patient_id(principal),
        "patient",
    )


def readable_record(
    *, session: Session, principal: Principal, patient_id: uuid.UUID, now: datetime
) -> Patient:
    """A patient record the principal may read: their own, one in their care, or one
    under an admin's active break-glass grant; ``NotFound`` otherwise."""
    return policy.get_readable(
        session, policy.readable_patients(principal, now=now), Patient, patient_id, "patient"
    )


def export_own_data(
    *, session: Session, blobs: BlobStore, principal: Principal, now: datetime
) -> dict[str, Any]:
    """Everything Hippocrate holds of the principal (a patient), decrypted: identity
    (NIR in full), consultations with messages and attachments (base64), and the
    break-glass grants on the record (GDPR Art. 15 and 20)."""
    from hippocrate.consultations.views import export_consultations

    patient = own_record(session=session, principal=principal, now=now)
    identity = to_read(patient).model_dump(mode="json")
    identity["nir"] = patient.nir
    grants = session.scalars(
        policy.readable_break_glass_grants(principal, now=now).order_by(BreakGlassGrant.started_at)
    ).all()
    return {
        "format": EXPORT_FORMAT,
        "exported_at": now.isoformat(),
        "patient": identity,
        "consultations": export_consultations(
            session=session, blobs=blobs, principal=principal, now=now
        ),
        "break_glass_grants": [
            {
                "id": str(grant.id),
                "reason": grant.reason,
                "started_at": grant.started_at.isoformat(),
                "expires_at": grant.expires_at.isoformat(),
                "revoked_at": grant.revoked_at.isoformat() if grant.revoked_at else None,
            }
            for grant in grants
        ],
    }


def delete_own_account(
    *,
    session: Session,
    blobs: BlobStore,
    principal: Principal,
    password: str,
    code: str | None,
    address: str,
    now: datetime,
    settings: Settings,
) -> None:
    """A patient deletes their account: crypto-shredding (docs/RETENTION.md).

    First the patient proves again that the account is theirs: its password, and a code
    when the second factor is on (``identity.signin.reauthenticate``, counted as a
    sign-in's failures are). A refusal raises before anything is touched, whichever way
    in (the API, the page) asked: a session alone never deletes an account. Staff are
    refused (``NotFound``) before any password is looked at.

    Then, in one transaction: open consultations are cancelled and every care relationship
    ends now; active break-glass grants are revoked; every session of the account ends;
    the data keys of the patient (and of the account, if it has its own) are destroyed;
    the patient is marked shredded and the account deleted, blind indexes cleared. Once
    committed the attachment files are deleted too. What remains is ciphertext no key
    opens, and plaintext metadata: ids, statuses and coarse times (docs/CONSULTATIONS.md).
    """
    from hippocrate.consultations.service import cancel_for_deletion

    patient = own_record(session=session, principal=principal, now=now)
    account = unsafe_get_account(session=session, account_id=principal.account_id)
    assert account is not None  # the principal's session was resolved from it
    reauthenticate(
        session=session,
        settings=settings,
        account=account,
        password=password,
        code=code,
        address=address,
        now=now,
    )
    consultations = session.scalars(
        policy.readable_consultations(principal, now=now).with_only_columns(Consultation.id)
    ).all()
    attachments = session.scalars(
        policy.readable_attachments(principal, now=now).with_only_columns(Attachment.id)
    ).all()
    cancel_for_deletion(session=session, consultation_ids=consultations, now=now)
    session.execute(
        update(CareRelationship)
        .where(CareRelationship.consultation_id.in_(consultations))
        .values(ends_at=now)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(BreakGlassGrant)
        .where(
            BreakGlassGrant.patient_id == patient.id,
            BreakGlassGrant.revoked_at.is_(None),
            BreakGlassGrant.expires_at > now,
        )
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    end_sessions_of(session=session, account_id=principal.account_id, now=now, reason="deleted")
    _tell_deleted(session=session, settings=settings, account_id=principal.account_id, now=now)
    # Plaintext columns only: deleting the account opens nothing of it.
    account_owner = session.scalar(
        select(Account.owner_id).where(Account.id == principal.account_id)
    )
    assert account_owner is not None
    session.execute(
        update(Account)
        .where(Account.id == principal.account_id)
        .values(status=AccountStatus.DELETED, email_index=None)
    )
    session.flush()
    shred_patient(session=session, patient_id=patient.id)
    if account_owner != patient.id:
        destroy_keys(session=session, owner=account_owner)
    for attachment_id in attachments:
        delete_after_commit(session=session, store=blobs, blob_id=attachment_id)


def _tell_deleted(
    *, session: Session, settings: Settings, account_id: uuid.UUID, now: datetime
) -> None:
    """Email the owner that their account is deleted (``account_deleted``), before its
    keys are destroyed: the message is built now, from the address as it still opens,
    and its code sealed and flushed under the key that is about to go, so what remains
    in the database is a record no key opens. It is delivered once the deletion
    commits, and not at all if it rolls back."""
    account = unsafe_account_to_notify(session=session, account_id=account_id)
    if account is None:
        return
    send(session=session, settings=settings, account=account, template="account_deleted", now=now)
    session.flush()


# -- break-glass -----------------------------------------------------------------------


def grant_break_glass(
    *,
    session: Session,
    principal: Principal,
    patient_id: uuid.UUID,
    reason: str,
    minutes: int,
    now: datetime,
    settings: Settings | None = None,
) -> BreakGlassGrant:
    """An admin (or a CLI operator) opens time-limited access to one patient's data,
    with a stated reason that the patient reads in their access history.

    With ``settings``, the patient is emailed at once (``break_glass_opened``: a fixed
    text, no health data, no reason, no name), when they have an active account."""
    policy.ensure_may_break_glass(principal)
    grant = BreakGlassGrant(
        admin_account_id=principal.account_id if principal.operator is None else None,
        operator=principal.operator,
        patient_id=policy.ensure_patient_exists(session, patient_id),
        started_at=now,
        expires_at=now + timedelta(minutes=minutes),
    )
    grant.reason = reason
    session.add(grant)
    session.flush()
    if settings is not None:
        account = unsafe_patient_account(session=session, patient_id=grant.patient_id)
        if account is not None:
            send(session=session, settings=settings, account=account,
                 template="break_glass_opened", now=now)  # fmt: skip
    return grant


def break_glass_grants_statement(*, principal: Principal, now: datetime) -> Select[BreakGlassGrant]:
    """The grants on the principal's record, newest first (to paginate)."""
    policy.own_patient_id(principal)
    return policy.readable_break_glass_grants(principal, now=now).order_by(
        BreakGlassGrant.started_at.desc(), BreakGlassGrant.id
    )

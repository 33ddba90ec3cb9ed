"""The access policy: the one module that decides who reads or changes patient data.

Every query of patient data starts from one of the ``readable_*`` statements below,
which are already scoped to the principal (Polar's ``get_readable_statement``): a
service cannot forget the care relationship, because it never holds an unscoped query.
Fetching one object goes through :func:`get_readable`, which answers ``NotFound`` alike
for "does not exist" and "not yours".

Rules (see DESIGN.md, "Who may see what"):

- patient: their own record, consultations, messages, attachments;
- practitioner: the consultations they took, and those patients' records, while the
  care relationship lasts (from taking the consultation until the configured period
  after it closes);
- admin: one patient's data only under an active break-glass grant (reason, expiry);
- operator (a person at the command line, a principal without an account): the same,
  under a break-glass grant of their own;
- support and dpo: no patient data at all (account metadata is ``accounts_metadata``);
- everyone: the emails the platform sent to their own account, and no others;
- a patient: the history of who accessed their record (no one else has one to read).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, and_, exists, false, literal, or_, select
from sqlalchemy.orm import Session

from hippocrate.access.errors import Forbidden, NotFound
from hippocrate.access.models import BreakGlassGrant
from hippocrate.access.principal import Principal
from hippocrate.consultations.models import (
    Attachment,
    CareRelationship,
    Consultation,
    ConsultationStatus,
    Message,
)
from hippocrate.i18n import _n, term
from hippocrate.identity.models import Account, AccountStatus, Practitioner, Role
from hippocrate.notify.models import OutboundEmail
from hippocrate.patients.errors import PatientShredded
from hippocrate.patients.models import Patient, PatientStatus
from hippocrate.tags import Purpose

T = TypeVar("T")


# -- building blocks ------------------------------------------------------------------


def _care_active(now: datetime) -> Any:
    return and_(
        CareRelationship.started_at <= now,
        or_(CareRelationship.ends_at.is_(None), CareRelationship.ends_at > now),
    )


def _grants_of(principal: Principal) -> Any:
    """The break-glass grants ``principal`` opened (an admin's, or an operator's)."""
    if principal.role is Role.OPERATOR and principal.operator is not None:
        return BreakGlassGrant.operator == principal.operator
    if principal.role is Role.ADMIN:
        return BreakGlassGrant.admin_account_id == principal.account_id
    return false()


def _break_glass_patients(principal: Principal, now: datetime) -> Select[uuid.UUID]:
    return select(BreakGlassGrant.patient_id).where(
        _grants_of(principal),
        BreakGlassGrant.started_at <= now,
        BreakGlassGrant.expires_at > now,
        BreakGlassGrant.revoked_at.is_(None),
    )


def readable_patient_ids(principal: Principal, *, now: datetime) -> Select[uuid.UUID]:
    """The ids of the patients whose record ``principal`` may read at ``now``."""
    if principal.role is Role.PATIENT and principal.patient_id is not None:
        return select(literal(principal.patient_id, Patient.id.type))
    if principal.role is Role.PRACTITIONER and principal.practitioner_id is not None:
        return select(CareRelationship.patient_id).where(
            CareRelationship.practitioner_id == principal.practitioner_id, _care_active(now)
        )
    if principal.role in (Role.ADMIN, Role.OPERATOR):
        return _break_glass_patients(principal, now)
    return select(Patient.id).where(false())


# -- scoped statements ----------------------------------------------------------------


def readable_patients(principal: Principal, *, now: datetime) -> Select[Patient]:
    return select(Patient).where(
        Patient.id.in_(readable_patient_ids(principal, now=now)),
        Patient.status == PatientStatus.ACTIVE,
    )


def readable_consultations(principal: Principal, *, now: datetime) -> Select[Consultation]:
    statement = select(Consultation)
    if principal.role is Role.PATIENT and principal.patient_id is not None:
        return statement.where(Consultation.patient_id == principal.patient_id)
    if principal.role is Role.PRACTITIONER and principal.practitioner_id is not None:
        in_care = exists().where(
            CareRelationship.consultation_id == Consultation.id,
            CareRelationship.practitioner_id == principal.practitioner_id,
            _care_active(now),
        )
        return statement.where(Consultation.practitioner_id == principal.practitioner_id, in_care)
    if principal.role in (Role.ADMIN, Role.OPERATOR):
        return statement.where(Consultation.patient_id.in_(_break_glass_patients(principal, now)))
    return statement.where(false())


def readable_messages(principal: Principal, *, now: datetime) -> Select[Message]:
    visible = readable_consultations(principal, now=now).with_only_columns(Consultation.id)
    return select(Message).where(Message.consultation_id.in_(visible))


def readable_attachments(principal: Principal, *, now: datetime) -> Select[Attachment]:
    visible = readable_consultations(principal, now=now).with_only_columns(Consultation.id)
    return select(Attachment).where(Attachment.consultation_id.in_(visible))


def readable_break_glass_grants(principal: Principal, *, now: datetime) -> Select[BreakGlassGrant]:
    """A patient sees every grant on their record; an admin or an operator the grants
    they opened."""
    statement = select(BreakGlassGrant)
    if principal.role is Role.PATIENT and principal.patient_id is not None:
        return statement.where(BreakGlassGrant.patient_id == principal.patient_id)
    return statement.where(_grants_of(principal))


def readable_practitioners(principal: Principal, *, now: datetime) -> Select[Practitioner]:
    """Practitioners whose identity (names, specialty, RPPS) ``principal`` may read: those
    who care or cared for a patient whose record ``principal`` may read at ``now`` (a
    patient is told who took their consultations and who read their record), and a
    practitioner themselves. A care relationship is kept after it ends, so a patient
    still sees who read their record years ago."""
    cared = select(CareRelationship.practitioner_id).where(
        CareRelationship.patient_id.in_(readable_patient_ids(principal, now=now))
    )
    themselves = (
        Practitioner.id == principal.practitioner_id
        if principal.practitioner_id is not None
        else false()
    )
    return select(Practitioner).where(or_(Practitioner.id.in_(cared), themselves))


def readable_emails(principal: Principal) -> Select[OutboundEmail]:
    """The emails ``principal`` may read: those sent to their own account, and no others
    (a verification code sent to someone else is not found, so checking one says
    nothing about other accounts)."""
    return select(OutboundEmail).where(OutboundEmail.account_id == principal.account_id)


def access_history_owner(principal: Principal) -> uuid.UUID:
    """The patient whose access history ``principal`` may read: their own. Everyone
    else is refused (``Forbidden``): staff have no record, and no role reads another
    patient's history."""
    if principal.patient_id is None:
        raise Forbidden(_n("only patients have an access history"))
    return principal.patient_id


def accounts_metadata(
    *, role: Role | None = None, status: AccountStatus | None = None
) -> Select[Account]:
    """Accounts in a stable order (oldest first), optionally of one role or status, for
    the support and admin routes and the operator's listing (the callers check the
    role). Whoever shows them shows metadata only (``AccountMetadata``: status, lockout,
    verification), never an email or a name."""
    statement = select(Account).where(Account.status != AccountStatus.DELETED)
    if role is not None:
        statement = statement.where(Account.role == role)
    if status is not None:
        statement = statement.where(Account.status == status)
    return statement.order_by(Account.created_at, Account.id)


def get_account(*, session: Session, account_id: uuid.UUID) -> Account:
    """One account an admin or support member manages (the routes check the role),
    ``NotFound`` if absent or deleted."""
    return get_readable(session, accounts_metadata(), Account, account_id, "account")


def queue_entries(principal: Principal, specialty: str) -> Select[uuid.UUID, datetime]:
    """The waiting consultations of ``specialty``, oldest first, as (id, waiting since).

    Only ids and timestamps: whoever reads the queue learns neither the subject nor the
    patient. Raises ``Forbidden`` unless ``principal`` practises that specialty.
    """
    ensure_may_take_from_queue(principal, specialty)
    return (
        select(Consultation.id, Consultation.created_at)
        .where(
            Consultation.specialty == specialty,
            Consultation.status == ConsultationStatus.REQUESTED,
        )
        .order_by(Consultation.created_at, Consultation.id)
    )


def get_readable(
    session: Session, statement: Select[T], model: Any, object_id: uuid.UUID, kind: str
) -> T:
    """One object of a scoped statement, or ``NotFound`` (absent and hidden alike)."""
    found = session.scalars(statement.where(model.id == object_id)).first()
    if found is None:
        raise NotFound(kind, object_id)
    return found


# -- actions on what is visible -------------------------------------------------------


def ensure_may_post_message(principal: Principal, consultation: Consultation) -> None:
    """The patient of an open consultation, or the practitioner who took it."""
    if principal.role is Role.PATIENT and consultation.patient_id == principal.patient_id:
        if consultation.status in (ConsultationStatus.REQUESTED, ConsultationStatus.IN_PROGRESS):
            return
        raise Forbidden(
            _n("this consultation is {status}: no new messages"),
            status=term(consultation.status.value),
        )
    if (
        principal.role is Role.PRACTITIONER
        and consultation.practitioner_id == principal.practitioner_id
    ):
        if consultation.status is ConsultationStatus.IN_PROGRESS:
            return
        raise Forbidden(
            _n("this consultation is {status}: no new messages"),
            status=term(consultation.status.value),
        )
    raise Forbidden(_n("only the patient and the practitioner in charge write in a consultation"))


def own_patient_id(principal: Principal) -> uuid.UUID:
    """The patient record of a patient principal; ``NotFound`` for anyone else (a staff
    account has no record of its own, and asking for one reveals nothing)."""
    if principal.role is Role.PATIENT and principal.patient_id is not None:
        return principal.patient_id
    raise NotFound("patient")


def ensure_may_open_consultation(principal: Principal) -> None:
    if principal.role is not Role.PATIENT or principal.patient_id is None:
        raise Forbidden(_n("only patients open consultations"))


def ensure_may_cancel(principal: Principal, consultation: Consultation) -> None:
    if principal.role is not Role.PATIENT or consultation.patient_id != principal.patient_id:
        raise Forbidden(_n("only the patient cancels their consultation"))


def ensure_may_close(principal: Principal, consultation: Consultation) -> None:
    if (
        principal.role is not Role.PRACTITIONER
        or consultation.practitioner_id != principal.practitioner_id
    ):
        raise Forbidden(_n("only the practitioner in charge closes a consultation"))


def ensure_may_hand_back(principal: Principal, consultation: Consultation) -> None:
    """The practitioner in charge hands a consultation back to the queue (the status
    is the service's to check)."""
    if (
        principal.role is not Role.PRACTITIONER
        or consultation.practitioner_id != principal.practitioner_id
    ):
        raise Forbidden(_n("only the practitioner in charge hands a consultation back"))


def ensure_may_record_incident(principal: Principal, consultation: Consultation) -> None:
    """The practitioner in charge, while the consultation runs or once it is closed (an
    incident may be noted when writing the report)."""
    ensure_may_close(principal, consultation)
    if consultation.status not in (ConsultationStatus.IN_PROGRESS, ConsultationStatus.CLOSED):
        raise Forbidden(
            _n("this consultation is {status}: no incident to record"),
            status=term(consultation.status.value),
        )


def ensure_may_break_glass(principal: Principal) -> None:
    """Only an admin (the second factor is already required of every staff session) or
    an operator at the command line opens a break-glass grant."""
    ensure_staff_role(principal, Role.ADMIN, Role.OPERATOR)


def ensure_patient_exists(session: Session, patient_id: uuid.UUID) -> uuid.UUID:
    """The id of an active patient; ``NotFound``, or ``PatientShredded`` once erased.
    Nothing of theirs is loaded, so nothing is opened (for opening a break-glass grant
    on them)."""
    status = session.scalar(select(Patient.status).where(Patient.id == patient_id))
    if status is None:
        raise NotFound("patient", patient_id)
    if status is PatientStatus.SHREDDED:
        raise PatientShredded()
    return patient_id


def ensure_may_take_from_queue(principal: Principal, specialty: str) -> None:
    if principal.role is not Role.PRACTITIONER or principal.practitioner_id is None:
        raise Forbidden(_n("only practitioners take consultations"))
    if principal.specialty != specialty:
        raise Forbidden(
            _n("this queue is for {specialty}, not your specialty"), specialty=specialty
        )


def may_see_full_nir(
    session: Session, principal: Principal, patient_id: uuid.UUID, *, now: datetime
) -> bool:
    """The patient themselves, or a practitioner caring for them now (prescriptions and
    reimbursement need it); never support, dpo, or an admin, even with break-glass."""
    if principal.role is Role.PATIENT:
        return principal.patient_id == patient_id
    if principal.role is not Role.PRACTITIONER:
        return False
    in_care = readable_patient_ids(principal, now=now).where(
        CareRelationship.patient_id == patient_id
    )
    return session.scalars(in_care).first() is not None


def ensure_staff_role(principal: Principal, *roles: Role) -> None:
    if principal.role not in roles:
        raise Forbidden(_n("your role does not allow this"))


def purpose_of(principal: Principal) -> Purpose:
    """Why this principal touches patient data, for the audit trail."""
    return {
        Role.PATIENT: Purpose.SELF,
        Role.PRACTITIONER: Purpose.CARE,
        Role.ADMIN: Purpose.BREAK_GLASS,
        Role.OPERATOR: Purpose.BREAK_GLASS,
    }.get(principal.role, Purpose.NONE)

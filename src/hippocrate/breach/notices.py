"""Art. 34 notices: one per affected patient, from the incident's scope, sent by a job.

The DPO launches the notices of an incident (its decision requires them, or the DPO
says why they go anyway); the platform's notice job then writes to each patient. The
job is a principal of its own (role ``notice-job``, purpose ``notice``), and the guard
holds it to its own rule: it may read a patient's address only while that patient's
notice is claimed for sending (or set for a letter), so it can read 300,000 addresses
for 300,000 notices and not one more; no other principal may use the purpose. The
DPO reads no address: they see counts.

What a notice says (plain French; English in the patient's space on request), with
nothing but fixed text and values from fixed vocabularies: the incident's date and
reference; which of the patient's data was involved and which was not; the likely
consequences of those (targeted phishing quoting health details, calls claiming to be
the health insurance or their doctor, identity fraud with the NIR, extortion); what
Hippocrate will never do (ask for a password, a NIR, bank details or a payment; send a
link or an attachment in such a notice); what to do; the DPO's contact and the right
to complain to the CNIL; the verification code. No health detail, ever: a category's
name ("le contenu de vos consultations"), never a subject or a message.

Delivery: email through the configured SMTP server (or the outbox), the patient's space
at next sign-in (``GET /patients/me/notices``), and a list for postal letters for the
patients the platform cannot email (no account or address, or every attempt failed).
The ledger (``notices``) is the truth: a notice is claimed by one conditional update,
sent, then marked sent; one email record, one Message-ID and one verification code per
notice however many attempts, so a retry after a worker died between the SMTP server's
acceptance and the mark is the same message again (mail clients show one), never a
second, different notice. Nothing is lost: a notice whose worker died is claimed again
when its lease runs out.
"""

from __future__ import annotations

import html
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, and_, func, insert, or_, select, text, update
from sqlalchemy.orm import Session

from hippocrate.audit.recorder import Actor, recorder_of
from hippocrate.breach.errors import (
    InvalidIncident,
    NothingToApprove,
    NoticesNotAllowed,
    SameApprover,
)
from hippocrate.breach.models import (
    Incident,
    IncidentChange,
    IncidentScope,
    Notice,
    NoticeStatus,
)
from hippocrate.config import Settings
from hippocrate.i18n import _n
from hippocrate.identity.models import Account
from hippocrate.notify import delivery
from hippocrate.notify.digest import code_digest, code_key
from hippocrate.notify.models import OutboundEmail
from hippocrate.notify.service import new_code, normalise_code, unsafe_patient_account
from hippocrate.notify.templates import Rendered
from hippocrate.tags import Category, Purpose, Tag

PARIS = ZoneInfo("Europe/Paris")
log = logging.getLogger(__name__)
TEMPLATE = "breach_notice"
NOTICE_ROLE = "notice-job"
#: The notice job's principal id: fixed, so that every process's job is the same
#: principal for the guard (one budget, one containment).
NOTICE_JOB_ID = uuid.UUID("6e6f7469-6365-4a6f-9200-000000000034")
NOTICE_ACTOR = Actor(role=NOTICE_ROLE, account_id=NOTICE_JOB_ID, purpose=Purpose.NOTICE)

MAX_ATTEMPTS = 6
BATCH = 200

#: The categories a notice speaks of, in French (``involved`` and ``not involved``).
CATEGORY_FR = {
    Category.IDENTITY: "votre identité (nom, prénoms, date de naissance)",
    Category.CONTACT: "vos coordonnées (adresse email, téléphone, adresse postale)",
    Category.NIR: "votre numéro de sécurité sociale (NIR)",
    Category.HEALTH: "le contenu de vos consultations (motifs, questionnaires, échanges)",
    Category.ATTACHMENT: "vos pièces jointes et documents (comptes rendus, ordonnances)",
}
CATEGORY_EN = {
    Category.IDENTITY: "your identity (names, birth date)",
    Category.CONTACT: "your contact details (email address, phone, postal address)",
    Category.NIR: "your social security number (NIR)",
    Category.HEALTH: "the content of your consultations (reasons, questionnaires, messages)",
    Category.ATTACHMENT: "your attachments and documents (reports, prescriptions)",
}
CATEGORIES = tuple(CATEGORY_FR)


@dataclass(frozen=True)
class Progress:
    total: int
    queued: int
    sending: int
    sent: int
    post: int
    seen: int

    def as_dict(self) -> dict[str, int]:
        return {
            "total": self.total,
            "queued": self.queued,
            "sending": self.sending,
            "sent": self.sent,
            "post": self.post,
            "seen": self.seen,
        }


# -- launching: the DPO ------------------------------------------------------------------


def request(
    *,
    session: Session,
    actor: Actor,
    incident: Incident,
    scope: IncidentScope,
    required: bool,
    voluntary_reason: str | None,
    now: datetime,
) -> None:
    """Ask that the notices of ``incident`` go out, from ``scope``; a second person
    approves (:func:`approve`): another DPO, or an operator at the command line. One
    stolen DPO session cannot write to every patient. Refused if the decision does not
    require notices and no reason is given for sending them anyway (EDPB: telling
    people may be good practice even without a high risk)."""
    if not required and not (voluntary_reason and voluntary_reason.strip()):
        raise NoticesNotAllowed()
    if scope.incident_id != incident.id:
        raise InvalidIncident(_n("this scope is not the incident's"))
    from hippocrate.breach import service  # the register's timeline (no cycle at import)

    service.mark_notices(
        session=session,
        actor=actor,
        incident=incident,
        action="notices-requested",
        changes={"scope_id": str(scope.id), "requested_by": str(actor.account_id)},
        note=voluntary_reason,
        now=now,
    )


def pending_request(session: Session, incident_id: uuid.UUID) -> IncidentChange | None:
    """The latest request of notices not approved since, if any."""
    lines = session.scalars(
        select(IncidentChange)
        .where(
            IncidentChange.incident_id == incident_id,
            IncidentChange.action.in_(("notices-requested", "notices-launched")),
        )
        .order_by(IncidentChange.seq.desc())
        .limit(1)
    ).first()
    return lines if lines is not None and lines.action == "notices-requested" else None


def approve(
    *, session: Session, actor: Actor, incident: Incident, now: datetime, note: str | None = None
) -> uuid.UUID:
    """Approve the pending request of ``incident``'s notices: the job then prepares and
    sends them. The requester cannot approve their own request; the scope is the one
    the request named. Returns that scope's id."""
    asked = pending_request(session, incident.id)
    if asked is None:
        raise NothingToApprove()
    if asked.actor_id is not None and asked.actor_id == actor.account_id:
        raise SameApprover()
    scope_id = uuid.UUID(asked.changes["scope_id"])
    launch(session=session, actor=actor, incident=incident, scope_id=scope_id, now=now, note=note)
    return scope_id


def launch(
    *,
    session: Session,
    actor: Actor,
    incident: Incident,
    scope_id: uuid.UUID,
    now: datetime,
    note: str | None = None,
) -> None:
    """Record that the notices of ``incident`` go out from ``scope_id``: the line of the
    timeline the job starts from. Only :func:`approve` calls it on a person's behalf;
    the drill and the benchmarks, which are the platform itself, call it directly."""
    from hippocrate.breach import service

    service.mark_notices(
        session=session,
        actor=actor,
        incident=incident,
        action="notices-launched",
        changes={"scope_id": str(scope_id)},
        note=note,
        now=now,
    )


def launched_scope(session: Session, incident_id: uuid.UUID) -> uuid.UUID | None:
    """The scope the notices of ``incident_id`` were launched from (committed), if any."""
    change = session.scalars(
        select(IncidentChange)
        .where(
            IncidentChange.incident_id == incident_id,
            IncidentChange.action == "notices-launched",
        )
        .order_by(IncidentChange.seq.desc())
        .limit(1)
    ).first()
    return uuid.UUID(change.changes["scope_id"]) if change else None


def unprepared(session: Session) -> list[uuid.UUID]:
    """Incidents whose notices were launched and none created yet (the prepare task was
    lost with its worker, or never queued)."""
    launched = select(IncidentChange.incident_id).where(IncidentChange.action == "notices-launched")
    prepared = select(Notice.incident_id).distinct()
    return list(
        session.scalars(
            select(Incident.id).where(Incident.id.in_(launched), Incident.id.not_in(prepared))
        )
    )


# -- the job ---------------------------------------------------------------------------


def prepare(*, session: Session, incident_id: uuid.UUID, now: datetime) -> list[list[uuid.UUID]]:
    """Create the launched notices not created yet (idempotent), and the batches to send."""
    scope_id = launched_scope(session, incident_id)
    if scope_id is None:
        return []  # the launch never committed
    scope = session.get(IncidentScope, scope_id)
    assert scope is not None
    patients = [uuid.UUID(p["id"]) for p in scope.document.get("patients", [])]
    existing = set(
        session.scalars(select(Notice.patient_id).where(Notice.incident_id == incident_id))
    )
    rows = [
        {
            "id": uuid.uuid4(),
            "incident_id": incident_id,
            "patient_id": patient,
            "scope_id": scope_id,
            "status": NoticeStatus.QUEUED.value,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for patient in patients
        if patient not in existing
    ]
    for start in range(0, len(rows), 1000):
        session.execute(insert(Notice), rows[start : start + 1000])
    return due(session=session, now=now, incident_id=incident_id)


def due(
    *, session: Session, now: datetime, incident_id: uuid.UUID | None = None
) -> list[list[uuid.UUID]]:
    """The notices to try now, in batches: queued and due, or claimed by a worker whose
    lease ran out (it died: nothing is lost)."""
    statement = select(Notice.id).where(
        or_(
            and_(Notice.status == NoticeStatus.QUEUED, Notice.next_attempt_at <= now),
            and_(Notice.status == NoticeStatus.SENDING, Notice.lease_until < now),
        )
    )
    if incident_id is not None:
        statement = statement.where(Notice.incident_id == incident_id)
    ids = list(session.scalars(statement.order_by(Notice.created_at, Notice.id)))
    return [ids[i : i + BATCH] for i in range(0, len(ids), BATCH)]


def unsafe_notice_email(session: Session, email_id: uuid.UUID) -> OutboundEmail | None:
    """The email record of a notice already tried: unsafe, it skips the access policy.
    The notice job sends it again to its own recipient with the same code and
    Message-ID (a retry must be the same message); nobody is shown what it holds."""
    return session.get(OutboundEmail, email_id)


@dataclass(frozen=True)
class Claimed:
    """A notice claimed for sending, and its message, built; nothing sent yet."""

    notice_id: uuid.UUID
    email_id: uuid.UUID
    message: EmailMessage


def claim(
    *, session: Session, settings: Settings, notice_id: uuid.UUID, now: datetime
) -> Claimed | None:
    """Claim ``notice_id`` (one conditional update: two workers never both hold it) and
    build its email; None if another worker holds it, it is sent, or it becomes a
    letter (no address)."""
    taken = session.execute(
        update(Notice)
        .where(
            Notice.id == notice_id,
            or_(
                and_(Notice.status == NoticeStatus.QUEUED, Notice.next_attempt_at <= now),
                and_(Notice.status == NoticeStatus.SENDING, Notice.lease_until < now),
            ),
        )
        .values(
            status=NoticeStatus.SENDING,
            lease_until=now + timedelta(seconds=settings.breach_notice_lease_seconds),
            attempts=Notice.attempts + 1,
        )
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        return None
    notice = session.get(Notice, notice_id, populate_existing=True)
    assert notice is not None
    # The job opens the address to write to its owner, under the guard's notice rule.
    account = unsafe_patient_account(session=session, patient_id=notice.patient_id)
    address = account.email if account is not None else None
    if account is None or not address:
        notice.status = NoticeStatus.POST
        notice.lease_until = None
        return None
    record = unsafe_notice_email(session, notice.email_id) if notice.email_id else None
    if record is None:
        record = OutboundEmail(
            account_id=account.id, owner_id=account.owner_id, template=TEMPLATE, created_at=now
        )
        code = new_code()
        record.verification_code = code
        # Findable by the public check ("is this message really from Hippocrate?").
        record.code_digest = code_digest(code_key(session), normalise_code(code) or "")
        session.add(record)
        session.flush()
        notice.email_id = record.id
    code = record.verification_code or ""
    incident = session.get(Incident, notice.incident_id)
    scope = session.get(IncidentScope, notice.scope_id)
    assert incident is not None
    assert scope is not None
    rendered = render(
        incident=incident,
        involved=involved_of(scope, notice.patient_id),
        code=code,
        public_url=settings.public_url,
        dpo_email=settings.dpo_email,
    )
    message = delivery.build_message(
        settings=settings, rendered=rendered, to=address, message_id=record.id, now=now
    )
    recorder = recorder_of(session)
    if recorder is not None:
        recorder.event(
            Tag.BREACH_NOTICE_CLAIMED,
            patient=notice.patient_id,
            resources=(f"notice:{notice.id}", f"incident:{notice.incident_id}"),
        )
    return Claimed(notice.id, record.id, message)


def mark_sent(engine: Engine, *, notice_id: uuid.UUID, email_id: uuid.UUID) -> None:
    """Mark a notice sent the moment the relay accepted it, in a short transaction of
    its own (plaintext columns only), so a worker killed later in its batch does not
    send it again; :func:`settle` then records it in the trail."""
    now = datetime.now(UTC)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Not waiting for the disk: a mark the server loses in a crash only
                # sends that notice again, the same message (settle marks it too).
                connection.execute(text("SET LOCAL synchronous_commit TO OFF"))
            connection.execute(
                update(Notice)
                .where(Notice.id == notice_id, Notice.status == NoticeStatus.SENDING)
                .values(status=NoticeStatus.SENT, sent_at=now, lease_until=None)
            )
            connection.execute(
                update(OutboundEmail).where(OutboundEmail.id == email_id).values(sent_at=now)
            )
    except Exception as exc:  # noqa: BLE001 - settle marks it again; never lose the batch
        log.warning("notice %s: sent mark not recorded: %s", notice_id, type(exc).__name__)


def settle(
    *, session: Session, notice_id: uuid.UUID, email_id: uuid.UUID, delivered: bool, now: datetime
) -> None:
    """After the attempt: sent, or queued again with a backoff (a letter after the last)."""
    notice = session.get(Notice, notice_id, populate_existing=True)
    assert notice is not None
    if delivered:
        notice.status = NoticeStatus.SENT
        notice.sent_at = notice.sent_at or now
        notice.lease_until = None
        session.execute(
            update(OutboundEmail).where(OutboundEmail.id == email_id).values(sent_at=now)
        )
        event = Tag.BREACH_NOTICE_SENT
    elif notice.attempts >= MAX_ATTEMPTS:
        notice.status = NoticeStatus.POST
        notice.lease_until = None
        event = Tag.BREACH_NOTICE_POST
    else:
        notice.status = NoticeStatus.QUEUED
        notice.lease_until = None
        notice.next_attempt_at = now + backoff(notice.attempts)
        event = Tag.BREACH_NOTICE_RETRIED
    recorder = recorder_of(session)
    if recorder is not None:
        recorder.event(
            event,
            patient=notice.patient_id,
            resources=(f"notice:{notice.id}", f"incident:{notice.incident_id}"),
        )


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, 4 min, 8 min...: a relay that is down is not hammered."""
    return timedelta(seconds=30 * 2 ** max(0, attempts - 1))


def allowed_read(session: Session, patient: uuid.UUID) -> bool:
    """The guard's notice rule: whether the notice job may read ``patient`` now (their
    notice is claimed for sending, or set for a letter)."""
    found = session.scalar(
        select(func.count())
        .select_from(Notice)
        .where(
            Notice.patient_id == patient,
            Notice.status.in_((NoticeStatus.SENDING, NoticeStatus.POST)),
        )
    )
    return bool(found)


# -- what the DPO and the patient see ----------------------------------------------------


def progress(session: Session, incident_id: uuid.UUID) -> Progress:
    rows = dict(
        session.execute(
            select(Notice.status, func.count())
            .where(Notice.incident_id == incident_id)
            .group_by(Notice.status)
        ).all()
    )
    seen = session.scalar(
        select(func.count())
        .select_from(Notice)
        .where(Notice.incident_id == incident_id, Notice.seen_at.is_not(None))
    )
    counts = {NoticeStatus(k).value: int(v) for k, v in rows.items()}
    return Progress(
        total=sum(counts.values()),
        queued=counts.get("queued", 0),
        sending=counts.get("sending", 0),
        sent=counts.get("sent", 0),
        post=counts.get("post", 0),
        seen=int(seen or 0),
    )


def involved_of(scope: IncidentScope, patient_id: uuid.UUID) -> frozenset[Category]:
    for entry in scope.document.get("patients", []):
        if entry["id"] == str(patient_id):
            return frozenset(Category(c) for c in entry["categories"] if c in CATEGORY_FR)
    return frozenset()


def unseen_by_account(session: Session, account_id: uuid.UUID) -> int:
    """How many notices of the account's patient wait unseen (0 for staff)."""
    found = session.scalar(
        select(func.count())
        .select_from(Notice)
        .join(Account, Account.patient_id == Notice.patient_id)
        .where(Account.id == account_id, Notice.seen_at.is_(None))
    )
    return int(found or 0)


def of_patient(session: Session, patient_id: uuid.UUID) -> Sequence[Notice]:
    return list(
        session.scalars(
            select(Notice).where(Notice.patient_id == patient_id).order_by(Notice.created_at)
        )
    )


# -- the text --------------------------------------------------------------------------

_CONSEQUENCES = {
    Category.HEALTH: (
        "des messages ou des appels frauduleux pourraient citer vos motifs de consultation "
        "pour vous tromper ou vous faire chanter"
    ),
    Category.NIR: (
        "une usurpation d'identité pourrait utiliser votre numéro de sécurité sociale, "
        "par exemple lors d'un faux appel de l'Assurance maladie"
    ),
    Category.CONTACT: (
        "vous pourriez recevoir des emails, SMS ou appels se présentant comme Hippocrate, "
        "votre médecin ou l'Assurance maladie"
    ),
    Category.IDENTITY: (
        "vos nom et date de naissance pourraient servir à rendre ces messages crédibles"
    ),
}

NEVER = (
    "Hippocrate ne vous demandera jamais votre mot de passe, votre numéro de sécurité "
    "sociale, vos coordonnées bancaires ni un paiement, par aucun moyen. Ce message ne "
    "contient aucun lien et aucune pièce jointe : méfiez-vous de tout message qui en "
    "contiendrait en se réclamant de cet incident."
)
TO_DO = (
    "Ce que nous vous conseillons : connectez-vous en tapant vous-même l'adresse "
    "{public_url} dans votre navigateur, changez votre mot de passe et activez la double "
    "authentification ; conservez tout message ou appel suspect ; si vous en êtes "
    "victime, déposez plainte ; vous trouverez de l'aide sur cybermalveillance.gouv.fr."
)


def render(
    *,
    incident: Incident,
    involved: Iterable[Category],
    code: str,
    public_url: str,
    dpo_email: str | None,
) -> Rendered:
    """The notice's email: fixed sentences, the categories from a fixed list, the date,
    the reference, the DPO's address, the code. Nothing a patient or practitioner wrote,
    and nothing the register's text says: the DPO's address is the deployment's setting
    (``HIPPOCRATE_DPO_EMAIL``), never the incident's contact, which whoever holds a DPO
    session could set to their own and have the platform send to every patient."""
    base = public_url.rstrip("/")
    chosen = [c for c in CATEGORIES if c in set(involved)]
    spared = [c for c in CATEGORIES if c not in chosen]
    when = incident.awareness_at.astimezone(PARIS).strftime("%d/%m/%Y")
    contact = dpo_email
    paragraphs = [
        f"Le {when}, nous avons constaté un incident de sécurité sur Hippocrate "
        f"(référence {incident.reference}). La loi nous demande de vous en informer, "
        "et nous vous devons de le faire clairement.",
        "Données vous concernant qui ont été exposées : "
        + ("; ".join(CATEGORY_FR[c] for c in chosen) or "aucune")
        + ".",
        "Données vous concernant qui n'ont pas été exposées : "
        + ("; ".join(CATEGORY_FR[c] for c in spared) or "aucune")
        + ".",
    ]
    risks = [
        _CONSEQUENCES[c]
        for c in (Category.HEALTH, Category.NIR, Category.CONTACT, Category.IDENTITY)
        if c in chosen
    ]
    if risks:
        paragraphs.append("Ce qui pourrait arriver : " + " ; ".join(risks) + ".")
    paragraphs += [
        NEVER,
        TO_DO.format(public_url=base),
        "Pour toute question : notre délégué à la protection des données, "
        f"{contact or 'joignable depuis votre espace'}. Vous pouvez aussi adresser une "
        "réclamation à la CNIL (www.cnil.fr).",
        f"Ce message existe aussi en anglais dans votre espace, à l'adresse {base}.",
    ]
    code_line = (
        f"Code de vérification : {code}. Vous retrouvez ce code dans votre espace, et "
        f"toute personne peut vérifier sur {base} qu'un message le portant vient bien "
        "d'Hippocrate."
    )
    subject = "Hippocrate : information sur un incident de sécurité vous concernant"
    text = "\n\n".join(["Hippocrate", "Bonjour,", *paragraphs, "-" * 40, code_line]) + "\n"
    body = "".join(f"<p>{_escape(p)}</p>" for p in ["Bonjour,", *paragraphs])
    page = (
        '<!doctype html><html lang="fr"><head><meta charset="utf-8"></head><body>'
        f"<p><strong>Hippocrate</strong></p>{body}"
        f"<p><strong>{_escape(code_line)}</strong></p></body></html>"
    )
    return Rendered(subject=subject, text=text, html=page)


def english(
    *, incident: Incident, involved: Iterable[Category], dpo_email: str | None
) -> dict[str, object]:
    """The notice in English, as the patient's space shows it on request."""
    chosen = [c for c in CATEGORIES if c in set(involved)]
    return {
        "summary": (
            f"On {incident.awareness_at:%Y-%m-%d} we found a security incident on Hippocrate "
            f"(reference {incident.reference})."
        ),
        "involved": [CATEGORY_EN[c] for c in chosen],
        "not_involved": [CATEGORY_EN[c] for c in CATEGORIES if c not in chosen],
        "never": (
            "Hippocrate will never ask for your password, social security number, bank "
            "details or a payment; this notice carries no link and no attachment."
        ),
        "to_do": (
            "Sign in by typing the address yourself, change your password, turn on the "
            "second factor, keep any suspicious message, file a complaint if you are a "
            "victim; help at cybermalveillance.gouv.fr."
        ),
        "dpo": dpo_email or "reachable from your space",
        "complaint": "You may lodge a complaint with the CNIL (www.cnil.fr).",
    }


def _escape(text: str) -> str:
    return html.escape(text, quote=False)

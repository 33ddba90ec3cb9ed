"""The floor Hippocrate is compared to: the same stack and routes, none of the security.

    BASELINE_DATABASE_URL=sqlite:///x.db BASELINE_BLOB_DIR=blobs \\
        uvicorn --factory bench.baseline:create_app

FastAPI, SQLAlchemy 2 on the engine Hippocrate makes (``make_engine``: the same SQLite
pragmas, the same PostgreSQL driver and pool), the same tables in shape (accounts,
sessions, patients, practitioners, consultations, messages, attachments, with the same
counters a read and a post update) and the same three routes answering the same
Pydantic models (``Page[MessageRead]``, ``MessageRead``, ``Page[ConsultationSummary]``):

- ``GET /api/v1/consultations/{id}/messages``: one page of messages with their
  attachments, the practitioner's account to say who wrote each, and the reader's
  side marked as read;
- ``POST /api/v1/consultations/{id}/messages``: multipart ``body`` and ``files``, each
  file written to the blob folder as sent, the message and attachment rows inserted;
- ``GET /api/v1/consultations``: the caller's consultations, one page, the total and
  the unread counts.

What it leaves out is what the comparison measures: every column is plaintext (no
vault, no data keys, no blind index), a bearer token is looked up in one query and is
the whole of authentication (no second factor, no session checks beyond expiry), the
consultation of the path is loaded by id without any access policy, nothing is
appended to an audit trail, no guard counts reads, and attached files are stored
without being checked or cleaned. Never deploy it.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request
from sqlalchemy import (
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    Uuid,
    func,
    select,
    update,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from hippocrate.api.pagination import Page
from hippocrate.consultations.models import ConsultationStatus
from hippocrate.consultations.schemas import AttachmentRead, ConsultationSummary, MessageRead
from hippocrate.db.base import UTCDateTime
from hippocrate.db.engine import make_engine

PREFIX = "/api/v1"


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map = {datetime: UTCDateTime()}  # noqa: RUF012  (Hippocrate's own)


class Account(Base):
    __tablename__ = "accounts"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SessionToken(Base):
    __tablename__ = "sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id"), index=True)
    expires_at: Mapped[datetime]


class Patient(Base):
    __tablename__ = "patients"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    account_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    given_names: Mapped[str] = mapped_column(String(200))
    family_name: Mapped[str] = mapped_column(String(200))
    birth_date: Mapped[str] = mapped_column(String(10))
    sex: Mapped[str] = mapped_column(String(8))
    email: Mapped[str] = mapped_column(String(254), index=True)
    phone: Mapped[str | None] = mapped_column(String(32), index=True)
    address: Mapped[str | None] = mapped_column(Text)
    nir: Mapped[str | None] = mapped_column(String(32), index=True)


class Practitioner(Base):
    __tablename__ = "practitioners"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id"), unique=True)
    specialty: Mapped[str] = mapped_column(String(64))
    given_names: Mapped[str] = mapped_column(String(200))
    family_name: Mapped[str] = mapped_column(String(200))


class Consultation(Base):
    __tablename__ = "consultations"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    specialty: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    practitioner_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("practitioners.id"), index=True
    )
    number: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    taken_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    patient_read: Mapped[int] = mapped_column(Integer, default=0)
    practitioner_read: Mapped[int] = mapped_column(Integer, default=0)
    subject: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text)
    questionnaire: Mapped[str] = mapped_column(Text)


class Message(Base):
    __tablename__ = "messages"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    consultation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consultations.id"), index=True)
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    author_account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id"))
    number: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    body: Mapped[str] = mapped_column(Text)


class Attachment(Base):
    __tablename__ = "attachments"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    message_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("messages.id"), index=True)
    consultation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consultations.id"), index=True)
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    size: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    filename: Mapped[str] = mapped_column(String(255))
    media_type: Mapped[str] = mapped_column(String(100))


# -- the app ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    account_id: uuid.UUID
    role: str
    patient_id: uuid.UUID | None
    practitioner_id: uuid.UUID | None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


router = APIRouter()


def db(request: Request) -> Iterator[Session]:
    """One session per request, committed at its end (as Hippocrate's unit of work)."""
    with request.app.state.sessions() as session:
        yield session
        session.commit()


DB = Annotated[Session, Depends(db)]


def caller(db: DB, authorization: Annotated[str, Header()] = "") -> Caller:
    scheme, _, token = authorization.partition(" ")
    row = db.execute(
        select(Account.id, Account.role, Patient.id, Practitioner.id)
        .join(SessionToken, SessionToken.account_id == Account.id)
        .outerjoin(Patient, Patient.account_id == Account.id)
        .outerjoin(Practitioner, Practitioner.account_id == Account.id)
        .where(SessionToken.token_hash == token_hash(token), SessionToken.expires_at > utcnow())
    ).first()
    if scheme.lower() != "bearer" or row is None:
        raise HTTPException(401, "not signed in")
    return Caller(*row)


Me = Annotated[Caller, Depends(caller)]


def consultation_of_path(db: DB, consultation_id: uuid.UUID) -> Consultation:
    found = db.get(Consultation, consultation_id)
    if found is None:
        raise HTTPException(404, "no such consultation")
    return found


ThisConsultation = Annotated[Consultation, Depends(consultation_of_path)]


def read_column(me: Caller, consultation: Consultation) -> str | None:
    if me.patient_id is not None and me.patient_id == consultation.patient_id:
        return "patient_read"
    if me.practitioner_id is not None and me.practitioner_id == consultation.practitioner_id:
        return "practitioner_read"
    return None


def messages_read(
    db: Session, consultation: Consultation, messages: list[Message]
) -> list[MessageRead]:
    attached: dict[uuid.UUID, list[Attachment]] = {m.id: [] for m in messages}
    if messages:
        for a in db.scalars(
            select(Attachment)
            .where(Attachment.message_id.in_(attached))
            .order_by(Attachment.message_id, Attachment.position)
        ):
            attached[a.message_id].append(a)
    practitioner_account = db.scalar(
        select(Practitioner.account_id).where(Practitioner.id == consultation.practitioner_id)
    )
    return [
        MessageRead(
            id=m.id,
            consultation_id=m.consultation_id,
            author="practitioner" if m.author_account_id == practitioner_account else "patient",
            created_at=m.created_at,
            body=m.body,
            attachments=[
                AttachmentRead(
                    id=a.id,
                    filename=a.filename,
                    media_type=a.media_type,
                    size=a.size,
                    created_at=a.created_at,
                )
                for a in attached[m.id]
            ],
        )
        for m in messages
    ]


@router.get(f"{PREFIX}/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get(f"{PREFIX}/consultations", response_model=Page[ConsultationSummary])
def list_consultations(
    db: DB,
    me: Me,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Page[ConsultationSummary]:
    mine = (
        Consultation.patient_id == me.patient_id
        if me.patient_id is not None
        else Consultation.practitioner_id == me.practitioner_id
    )
    statement = select(Consultation).where(mine).order_by(Consultation.created_at.desc())
    total = db.scalar(select(func.count()).select_from(statement.order_by(None).subquery()))
    rows = list(db.scalars(statement.limit(limit).offset(offset)))
    position = (
        Consultation.patient_read if me.patient_id is not None else Consultation.practitioner_read
    )
    unread = dict(
        db.execute(
            select(Message.consultation_id, func.count())
            .join(Consultation, Consultation.id == Message.consultation_id)
            .where(
                Message.consultation_id.in_([c.id for c in rows]),
                Message.author_account_id != me.account_id,
                Message.number > position,
            )
            .group_by(Message.consultation_id)
        ).all()
    )
    patient = me.patient_id is not None
    return Page(
        items=[
            ConsultationSummary(
                id=c.id,
                specialty=c.specialty,
                status=ConsultationStatus(c.status),
                subject=c.subject if patient else None,
                created_at=c.created_at if patient or c.status == "requested" else None,
                taken_at=c.taken_at if patient else None,
                closed_at=c.closed_at if patient else None,
                cancelled_at=c.cancelled_at if patient else None,
                unread=unread.get(c.id, 0),
            )
            for c in rows
        ],
        total=int(total or 0),
        limit=limit,
        offset=offset,
    )


@router.get(f"{PREFIX}/consultations/{{consultation_id}}/messages")
def list_messages(
    db: DB,
    me: Me,
    consultation: ThisConsultation,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Page[MessageRead]:
    statement = (
        select(Message).where(Message.consultation_id == consultation.id).order_by(Message.number)
    )
    total = db.scalar(select(func.count()).select_from(statement.order_by(None).subquery()))
    rows = list(db.scalars(statement.limit(limit).offset(offset)))
    items = messages_read(db, consultation, rows)
    column = read_column(me, consultation)
    if column is not None and rows:
        seen = max(m.number for m in rows)
        if seen > getattr(consultation, column):
            db.execute(
                update(Consultation)
                .where(Consultation.id == consultation.id)
                .values({column: seen})
            )
    return Page(items=items, total=int(total or 0), limit=limit, offset=offset)


async def message_form(request: Request) -> tuple[str, list[tuple[str, str, bytes]]]:
    async with request.form() as form:
        files = []
        for part in form.getlist("files"):
            if isinstance(part, str):
                continue
            files.append(
                (
                    part.filename or "file",
                    part.content_type or "application/octet-stream",
                    await part.read(),
                )
            )
        body = form.get("body", "")
    return (body if isinstance(body, str) else ""), files


Form = Annotated[tuple[str, list[tuple[str, str, bytes]]], Depends(message_form)]


@router.post(f"{PREFIX}/consultations/{{consultation_id}}/messages", status_code=201)
def post_message(
    request: Request, db: DB, me: Me, consultation: ThisConsultation, form: Form
) -> MessageRead:
    blobs: Path = request.app.state.blobs
    body, files = form
    number = db.scalar(
        update(Consultation)
        .where(Consultation.id == consultation.id)
        .values(number=Consultation.number + 1, updated_at=utcnow())
        .returning(Consultation.number)
    )
    message = Message(
        consultation_id=consultation.id,
        patient_id=consultation.patient_id,
        author_account_id=me.account_id,
        number=number,
        created_at=utcnow(),
        body=body,
    )
    db.add(message)
    db.flush()
    for position, (filename, media_type, content) in enumerate(files):
        attachment = Attachment(
            id=uuid.uuid4(),
            message_id=message.id,
            consultation_id=consultation.id,
            patient_id=consultation.patient_id,
            size=len(content),
            position=position,
            created_at=message.created_at,
            filename=filename,
            media_type=media_type,
        )
        (blobs / attachment.id.hex).write_bytes(content)
        db.add(attachment)
    db.flush()
    return messages_read(db, consultation, [message])[0]


def create_app(database_url: str | None = None, blob_dir: Path | None = None) -> FastAPI:
    """The baseline app; by default on ``BASELINE_DATABASE_URL`` and ``BASELINE_BLOB_DIR``."""
    engine = make_engine(database_url or os.environ["BASELINE_DATABASE_URL"])
    blobs = Path(blob_dir or os.environ["BASELINE_BLOB_DIR"])
    blobs.mkdir(parents=True, exist_ok=True)
    app = FastAPI(title="baseline")
    app.state.engine = engine
    app.state.sessions = sessionmaker(bind=engine, expire_on_commit=False)
    app.state.blobs = blobs
    app.include_router(router)
    return app


# -- data ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seat:
    """One client's tokens and consultations, as ``bench.api.Seat`` has them."""

    practitioner: str  # bearer tokens
    patient: str
    read_id: uuid.UUID
    post_id: uuid.UUID


QUESTIONNAIRE = (
    '{"symptoms_duration":"4_to_7_days","current_treatments":"aucun",'
    '"allergies":"aucune","pregnancy":"not_applicable"}'
)


def create_schema(engine: Engine) -> None:
    Base.metadata.create_all(engine)


def _token(session: Session, account_id: uuid.UUID) -> str:
    token = secrets.token_urlsafe(32)
    session.add(
        SessionToken(
            token_hash=token_hash(token),
            account_id=account_id,
            expires_at=utcnow() + timedelta(days=1),
        )
    )
    return token


def _patient(session: Session, generator: Any, account_id: uuid.UUID | None) -> Patient:
    data = generator.patient(with_nir=True)
    patient = Patient(
        id=uuid.uuid4(),
        account_id=account_id,
        given_names=data.given_names,
        family_name=data.family_name,
        birth_date=data.birth_date.isoformat(),
        sex=str(data.sex),
        email=data.email,
        phone=data.phone,
        address=data.address.model_dump_json(),
        nir=data.nir,
    )
    session.add(patient)
    session.flush()  # no relationships: the unit of work does not order the tables
    return patient


def _consultation(
    session: Session, patient: Patient, practitioner: Practitioner, specialty: str, n: int
) -> Consultation:
    now = utcnow()
    consultation = Consultation(
        id=uuid.uuid4(),
        patient_id=patient.id,
        specialty=specialty,
        status=ConsultationStatus.IN_PROGRESS.value,
        practitioner_id=practitioner.id,
        created_at=now,
        updated_at=now,
        taken_at=now,
        subject=f"Toux persistante depuis dix jours ({n})",
        description="Toux sèche, surtout la nuit, sans fièvre. Pas de traitement en cours.",
        questionnaire=QUESTIONNAIRE,
    )
    session.add(consultation)
    return consultation


def seed(engine: Engine, *, seats: int, messages: int, listed: int, seed: int = 2024) -> list[Seat]:
    """Per seat what ``bench.api`` seeds for Hippocrate: a practitioner and a patient
    with accounts, one consultation of ``messages`` messages (alternating authors), one
    to post in, and ``listed - 2`` consultations of as many other patients taken by the
    same practitioner."""
    from hippocrate.patients.synthetic import SyntheticPatients

    generator = SyntheticPatients(seed)
    specialty = "general-practice"
    made = []
    with Session(engine) as session:
        for index in range(seats):
            staff = Account(id=uuid.uuid4(), email=f"praticien.{index}@example.org", role="staff")
            session.add(staff)
            practitioner = Practitioner(
                id=uuid.uuid4(),
                account_id=staff.id,
                specialty=specialty,
                given_names="Camille",
                family_name="Durand",
            )
            session.add(practitioner)
            account = Account(id=uuid.uuid4(), email=f"patient.{index}@example.org", role="patient")
            session.add(account)
            session.flush()
            patient = _patient(session, generator, account.id)
            read = _consultation(session, patient, practitioner, specialty, 0)
            session.flush()
            for n in range(messages):
                author = account.id if n % 2 == 0 else staff.id
                session.add(
                    Message(
                        consultation_id=read.id,
                        patient_id=patient.id,
                        author_account_id=author,
                        number=n + 1,
                        created_at=utcnow(),
                        body=f"Message {n + 1} : la toux est moins forte le matin, "
                        "toujours présente le soir après le repas.",
                    )
                )
            read.number = messages
            post = _consultation(session, patient, practitioner, specialty, 1)
            for n in range(2, listed):
                other = _patient(session, generator, None)
                _consultation(session, other, practitioner, specialty, n)
            session.flush()
            made.append(
                Seat(_token(session, staff.id), _token(session, account.id), read.id, post.id)
            )
        session.commit()
    return made

"""HTTP routes of the consultations domain.

Bodies that may carry files (opening a consultation, writing a message) are accepted
either as JSON without files or as multipart/form-data with the files in the ``files``
field; see docs/CONSULTATIONS.md.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from hippocrate.access.principal import Principal
from hippocrate.api.deps import DB, AppSettings, CurrentPrincipal, Now, authenticated_router
from hippocrate.api.pagination import Page, Paging, fetch_page
from hippocrate.api.problems import Language
from hippocrate.blobs import BlobStore, FileBlobStore
from hippocrate.consultations import service, views
from hippocrate.consultations.errors import InvalidUpload
from hippocrate.consultations.models import Consultation, ConsultationStatus, Message
from hippocrate.consultations.schemas import (
    CatalogueRead,
    CloseInput,
    ConsultationCreate,
    ConsultationRead,
    ConsultationSummary,
    HandBackInput,
    IncidentCreate,
    MessageCreate,
    MessageRead,
    QueueEntry,
    catalogue,
)
from hippocrate.consultations.uploads import (
    FILE_FIELD,
    Limits,
    UploadedFile,
    media_type,
    read_bytes,
    read_multipart,
)
from hippocrate.i18n import _n

router = authenticated_router(tags=["consultations"])

_JSON_LIMIT = 256 * 1024


def blob_store(settings: AppSettings) -> BlobStore:
    """Where attachment bodies are kept (sealed): the blob folder by default."""
    return FileBlobStore(settings.blob_dir)


Blobs = Annotated[BlobStore, Depends(blob_store)]


def current_consultation(
    db: DB, principal: CurrentPrincipal, now: Now, consultation_id: uuid.UUID
) -> Consultation:
    """The consultation of the path, fetched once per request through the access policy:
    ``NotFound`` alike when it does not exist and when the caller may not see it."""
    return service.get_consultation(
        session=db, principal=principal, consultation_id=consultation_id, now=now
    )


def current_message(
    db: DB, principal: CurrentPrincipal, now: Now, message_id: uuid.UUID
) -> Message:
    """The message of the path, through the access policy (``NotFound`` if hidden)."""
    return service.get_message(session=db, principal=principal, message_id=message_id, now=now)


CurrentConsultation = Annotated[Consultation, Depends(current_consultation)]
CurrentMessage = Annotated[Message, Depends(current_message)]


# -- bodies that may carry files -------------------------------------------------------


def _validate(model: type[BaseModel], raw: str | bytes) -> Any:
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        # The same 422 problem as any other body; errors carry location and message (and
        # the context, whose refusal of ours api/problems.py translates) only.
        raise RequestValidationError(
            [
                {"loc": ("body", *e["loc"]), "msg": e["msg"], "type": e["type"]}
                | ({"ctx": e["ctx"]} if "ctx" in e else {})
                for e in exc.errors()
            ]
        ) from None


@dataclass(frozen=True)
class _WithFiles:
    data: Any
    files: list[UploadedFile] = field(default_factory=list)


async def _json_or_multipart(
    request: Request, settings: AppSettings, model: type[BaseModel], part: str
) -> _WithFiles:
    kind = media_type(request)
    if kind == "application/json":
        return _WithFiles(_validate(model, await read_bytes(request, limit=_JSON_LIMIT)))
    if kind == "multipart/form-data":
        limits = Limits(settings.attachments_per_message, settings.attachment_max_bytes)
        upload = await read_multipart(request, text_fields={part}, limits=limits)
        if part == "body":  # a plain text field
            raw = json.dumps({"body": upload.fields.get("body", "")})
        elif part in upload.fields:
            raw = upload.fields[part]
        else:
            raise InvalidUpload(_n("the {part!r} field (JSON) is missing"), part=part)
        return _WithFiles(_validate(model, raw), upload.files)
    raise InvalidUpload(_n("send application/json, or multipart/form-data to attach files"))


async def opening_input(request: Request, settings: AppSettings) -> _WithFiles:
    return await _json_or_multipart(request, settings, ConsultationCreate, "consultation")


async def message_input(request: Request, settings: AppSettings) -> _WithFiles:
    return await _json_or_multipart(request, settings, MessageCreate, "body")


def _body_doc(model: type[BaseModel], part: str, part_doc: dict[str, Any]) -> dict[str, Any]:
    files = {"type": "array", "items": {"type": "string", "format": "binary"}}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": model.model_json_schema()},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {part: part_doc, FILE_FIELD: files},
                    }
                },
            },
        }
    }


_OPENING_DOC = _body_doc(
    ConsultationCreate,
    "consultation",
    {"type": "string", "description": "the ConsultationCreate object, as JSON"},
)
_MESSAGE_DOC = _body_doc(MessageCreate, "body", {"type": "string"})


# -- consultations ---------------------------------------------------------------------


@router.get("/consultations/catalogue", response_model=CatalogueRead)
def get_catalogue(language: Language) -> CatalogueRead:
    """The specialties and the pre-consultation questionnaire, labelled in the
    request's language (``Accept-Language``: French by default, or English)."""
    return catalogue(language)


@router.get("/consultations", response_model=Page[ConsultationSummary])
def list_consultations(
    db: DB,
    principal: CurrentPrincipal,
    now: Now,
    paging: Paging,
    status: Annotated[ConsultationStatus | None, Query()] = None,
) -> Page[ConsultationSummary]:
    statement = service.list_consultations(principal=principal, now=now, status=status)
    rows, total = fetch_page(db, statement, paging)
    unread = service.unread_counts(session=db, principal=principal, consultations=rows, now=now)
    return Page(
        items=[
            views.summary(
                c,
                with_subject=principal.is_patient,
                specialty=principal.specialty,
                unread=unread[c.id],
            )
            for c in rows
        ],
        total=total,
        limit=paging.limit,
        offset=paging.offset,
    )


@router.post(
    "/consultations",
    response_model=ConsultationRead,
    status_code=201,
    openapi_extra=_OPENING_DOC,
)
def open_consultation(
    *,
    db: DB,
    principal: CurrentPrincipal,
    language: Language,
    now: Now,
    settings: AppSettings,
    blobs: Blobs,
    submitted: Annotated[_WithFiles, Depends(opening_input)],
) -> ConsultationRead:
    consultation = service.open_consultation(
        session=db,
        settings=settings,
        blobs=blobs,
        principal=principal,
        data=submitted.data,
        files=submitted.files,
        now=now,
    )
    return views.consultation_read(db, consultation, reader=principal, now=now, language=language)


@router.get("/consultations/{consultation_id}", response_model=ConsultationRead)
def get_consultation(
    db: DB,
    principal: CurrentPrincipal,
    now: Now,
    consultation: CurrentConsultation,
    language: Language,
) -> ConsultationRead:
    """The record; for the practitioner in charge, with the patient's names and age
    (an audited read of the patient's record)."""
    return views.consultation_read(db, consultation, reader=principal, now=now, language=language)


@router.post("/consultations/{consultation_id}/cancel", response_model=ConsultationRead)
def cancel_consultation(
    *,
    db: DB,
    principal: CurrentPrincipal,
    language: Language,
    now: Now,
    settings: AppSettings,
    consultation: CurrentConsultation,
) -> ConsultationRead:
    service.cancel(
        session=db, settings=settings, principal=principal, consultation=consultation, now=now
    )
    return views.consultation_read(db, consultation, reader=principal, now=now, language=language)


@router.post("/consultations/{consultation_id}/close", response_model=ConsultationRead)
def close_consultation(
    *,
    db: DB,
    principal: CurrentPrincipal,
    language: Language,
    now: Now,
    settings: AppSettings,
    consultation: CurrentConsultation,
    data: CloseInput,
    blobs: Blobs,
) -> ConsultationRead:
    """Close with the report, acts and prescription: the signed report and
    prescription PDFs are attached to a message of the practitioner's, in the same
    transaction (a document that cannot be made or signed closes nothing)."""
    service.close(
        session=db,
        settings=settings,
        blobs=blobs,
        principal=principal,
        consultation=consultation,
        data=data,
        now=now,
    )
    return views.consultation_read(db, consultation, reader=principal, now=now, language=language)


@router.post("/consultations/{consultation_id}/hand-back", response_model=ConsultationRead)
def hand_back_consultation(
    *,
    db: DB,
    principal: CurrentPrincipal,
    language: Language,
    now: Now,
    settings: AppSettings,
    consultation: CurrentConsultation,
    data: HandBackInput,
) -> ConsultationRead:
    """The practitioner in charge hands an in-progress consultation back to the queue
    of its specialty, with a reason: their care relationship ends now, the
    consultation waits again at its original place, the patient is told."""
    service.hand_back(
        session=db,
        settings=settings,
        principal=principal,
        consultation=consultation,
        reason=data.reason,
        now=now,
    )
    return views.consultation_read(db, consultation, language=language)


@router.post(
    "/consultations/{consultation_id}/incidents", response_model=ConsultationRead, status_code=201
)
def record_incident(
    *,
    db: DB,
    principal: CurrentPrincipal,
    language: Language,
    now: Now,
    consultation: CurrentConsultation,
    data: IncidentCreate,
) -> ConsultationRead:
    service.record_incident(
        session=db,
        principal=principal,
        consultation=consultation,
        description=data.description,
        now=now,
    )
    return views.consultation_read(db, consultation, reader=principal, now=now, language=language)


# -- messages and attachments ----------------------------------------------------------


@router.get("/consultations/{consultation_id}/messages", response_model=Page[MessageRead])
def list_messages(
    db: DB, principal: CurrentPrincipal, now: Now, paging: Paging, consultation: CurrentConsultation
) -> Page[MessageRead]:
    statement = service.messages_statement(principal=principal, consultation=consultation, now=now)
    rows, total = fetch_page(db, statement, paging)
    items = views.messages_read(db, principal, consultation, rows, now)
    # Shown: the caller's side has read them (a number, no time).
    service.mark_read(session=db, principal=principal, consultation=consultation, messages=rows)
    return Page(
        items=items,
        total=total,
        limit=paging.limit,
        offset=paging.offset,
    )


@router.post(
    "/consultations/{consultation_id}/messages",
    response_model=MessageRead,
    status_code=201,
    openapi_extra=_MESSAGE_DOC,
)
def post_message(
    *,
    db: DB,
    principal: CurrentPrincipal,
    now: Now,
    settings: AppSettings,
    blobs: Blobs,
    submitted: Annotated[_WithFiles, Depends(message_input)],
    consultation: CurrentConsultation,
) -> MessageRead:
    message = service.post_message(
        session=db,
        settings=settings,
        blobs=blobs,
        principal=principal,
        consultation=consultation,
        body=submitted.data.body,
        files=submitted.files,
        now=now,
    )
    return views.messages_read(db, principal, consultation, [message], now)[0]


@router.get("/messages/{message_id}", response_model=MessageRead)
def get_message(
    db: DB, principal: CurrentPrincipal, now: Now, message: CurrentMessage
) -> MessageRead:
    # The consultation the message belongs to (its practitioner names the author).
    consultation = service.get_consultation(
        session=db, principal=principal, consultation_id=message.consultation_id, now=now
    )
    return views.messages_read(db, principal, consultation, [message], now)[0]


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback name and the exact UTF-8 name (RFC 6266)."""
    fallback = "".join(
        ch if 32 <= ord(ch) < 127 and ch not in '"\\;' else "_" for ch in filename
    ).strip()
    encoded = quote(filename, safe="")
    return f"attachment; filename=\"{fallback or 'attachment'}\"; filename*=UTF-8''{encoded}"


@router.get(
    "/attachments/{attachment_id}",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}, "image/jpeg": {}, "image/png": {}}}},
)
def download_attachment(
    db: DB, principal: CurrentPrincipal, now: Now, blobs: Blobs, attachment_id: uuid.UUID
) -> Response:
    """The decrypted file, as a download (never rendered inline)."""
    attachment, content = service.read_attachment(
        session=db, blobs=blobs, principal=principal, attachment_id=attachment_id, now=now
    )
    return Response(
        content,
        media_type=attachment.media_type or "application/octet-stream",
        headers={
            "Content-Disposition": content_disposition(attachment.filename or "attachment"),
            # A document a browser might render: no scripts, no plugins, no frames.
            "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; sandbox",
        },
    )


# -- the queue -------------------------------------------------------------------------


@router.get("/queue", response_model=Page[QueueEntry])
def get_queue(db: DB, principal: CurrentPrincipal, now: Now, paging: Paging) -> Page[QueueEntry]:
    """The caller's specialty queue, oldest first: specialty, position and waiting time
    only (never the subject, never the patient)."""
    rows, total = service.queue(
        session=db, principal=principal, now=now, limit=paging.limit, offset=paging.offset
    )
    return Page(
        items=[QueueEntry(**vars(row)) for row in rows],
        total=total,
        limit=paging.limit,
        offset=paging.offset,
    )


def _taken(
    db: DB, principal: Principal, now: Now, consultation: Consultation, language: str
) -> ConsultationRead:
    return views.consultation_read(db, consultation, reader=principal, now=now, language=language)


@router.post("/queue/take", response_model=ConsultationRead)
def take_from_queue(
    db: DB, principal: CurrentPrincipal, now: Now, settings: AppSettings, language: Language
) -> ConsultationRead:
    """Take the oldest waiting consultation of the caller's specialty."""
    consultation = service.take_next(session=db, settings=settings, principal=principal, now=now)
    return _taken(db, principal, now, consultation, language)


QueueEntryId = Annotated[
    str,
    Path(
        max_length=64,
        description="The opaque ``entry`` of a waiting consultation, as GET /queue gave it",
    ),
]


@router.post("/queue/{entry}/take", response_model=ConsultationRead)
def take_queue_entry(
    *,
    db: DB,
    principal: CurrentPrincipal,
    now: Now,
    settings: AppSettings,
    entry: QueueEntryId,
    language: Language,
) -> ConsultationRead:
    """Take one consultation of the queue list, by its entry: 409 once it no longer
    waits (another practitioner took it, the patient cancelled)."""
    consultation = service.take_entry(
        session=db, settings=settings, principal=principal, entry=entry, now=now
    )
    return _taken(db, principal, now, consultation, language)

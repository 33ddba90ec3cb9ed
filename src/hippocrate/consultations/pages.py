"""The consultations domain's pages: the patient's consultations (open one, follow it,
cancel it, its report and signed prescription) and the practitioner's (the queue,
taking, answering, handing back, closing, their patients).

Every page calls the service ``consultations/api.py`` calls, with the same arguments:
the consultation of the path is fetched once per request through the access policy
(``service.get_consultation``: "not yours" is "not found"), its record is shaped by
``views.consultation_read`` (the same audited reads as the API's GET, the patient's
names and age for the practitioner in charge only) and its thread by
``views.messages_read``, then marked read as the API's message list does. The queue
shows what ``GET /queue`` shows: waiting times, never a subject or a patient.

Files sent with a form go through the API's limits and checks: the upload reader of
``uploads.py`` when the body has not been read yet, and in every case the service's
``check_files`` (type, structure, size, count) before anything is stored.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Form, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData, UploadFile

from hippocrate.access.errors import NotFound
from hippocrate.access.principal import Principal
from hippocrate.api.deps import DB, AppSettings, Now
from hippocrate.api.pagination import PageParams, Paging, fetch_page
from hippocrate.consultations import service, views
from hippocrate.consultations.api import Blobs, QueueEntryId, content_disposition
from hippocrate.consultations.errors import InvalidUpload
from hippocrate.consultations.files import JPEG, PNG
from hippocrate.consultations.models import Consultation, ConsultationStatus
from hippocrate.consultations.schemas import (
    SPECIALTIES,
    CloseInput,
    ConsultationCreate,
    ConsultationRead,
    ConsultationSummary,
    HandBackInput,
    MessageCreate,
    MessageRead,
    catalogue,
)
from hippocrate.consultations.uploads import (
    FILE_FIELD,
    Limits,
    Upload,
    UploadedFile,
    media_type,
    read_multipart,
)
from hippocrate.documents.service import PRESCRIPTION_NAME, REPORT_NAME
from hippocrate.errors import InvalidField
from hippocrate.i18n import Message, _n
from hippocrate.identity.models import Role
from hippocrate.web import csrf, render
from hippocrate.web.deps import PagePrincipal, pages_router, require_role
from hippocrate.web.errors import on_refusal
from hippocrate.web.render import Flash

M = TypeVar("M", bound=BaseModel)

router = pages_router()
public = pages_router(public=True)

PATIENT = [require_role(Role.PATIENT)]
PRACTITIONER = [require_role(Role.PRACTITIONER)]

#: Images the platform re-encoded without metadata (``files.py``, ``images.py``): the
#: only attachments a page shows inline, and then sandboxed. The policy replaces the
#: pages' own, so it keeps their ``frame-ancestors 'none'``: no other site frames a file.
INLINE_TYPES = frozenset({JPEG, PNG})
SANDBOXED = "default-src 'none'; frame-ancestors 'none'; sandbox"

STATUS_LABELS = {
    ConsultationStatus.REQUESTED: _n("Waiting for a practitioner"),
    ConsultationStatus.IN_PROGRESS: _n("In progress"),
    ConsultationStatus.CLOSED: _n("Closed"),
    ConsultationStatus.CANCELLED: _n("Cancelled"),
}

FIELD_LABELS = {
    "specialty": _n("Specialty"),
    "subject": _n("Subject"),
    "description": _n("Description"),
    "questionnaire": _n("Questionnaire"),
    "body": _n("Message"),
    "report": _n("Report"),
    "prescription": _n("Prescription"),
    "acts": _n("Acts"),
    "reason": _n("Reason"),
}

FLASHES = {
    "opened": _n("Your consultation is open: a practitioner of the specialty will take it."),
    "sent": _n("Your message is sent."),
    "cancelled": _n("The consultation is cancelled."),
    "closed": _n("The consultation is closed; the signed documents are below."),
    "handed_back": _n("The consultation went back to the queue."),
    "taken": _n("You took this consultation."),
}

#: The page routes whose forms carry attachments (method, path template): their
#: bodies may be as large as an API upload's (``api/limits.py`` finds the API's upload
#: routes in the OpenAPI document, which pages are not part of).
UPLOAD_ROUTES = (
    ("POST", "/patient/consultations/new"),
    ("POST", "/patient/consultations/{consultation_id}/messages"),
    ("POST", "/practitioner/consultations/{consultation_id}/messages"),
)

CHOOSE_FILES_AGAIN = _n("Files are never kept when a form is refused: choose them again.")


# -- loading, through the policy ---------------------------------------------------------


def page_consultation(
    db: DB, principal: PagePrincipal, clock: Now, consultation_id: uuid.UUID
) -> Consultation:
    """The consultation of the path through the access policy, as the API's
    ``current_consultation``: ``NotFound`` alike when it does not exist and when the
    principal may not see it."""
    return service.get_consultation(
        session=db, principal=principal, consultation_id=consultation_id, now=clock
    )


PageConsultation = Annotated[Consultation, Depends(page_consultation)]


# -- presenters: plain data for the templates --------------------------------------------


@dataclass(frozen=True)
class Row:
    """A consultation in a list."""

    id: uuid.UUID
    specialty: str
    status: str
    status_label: str
    subject: str | None
    last_activity: datetime | None
    waiting_since: datetime | None
    unread: int
    open: bool


@dataclass(frozen=True)
class AttachmentLink:
    """An attachment as the thread links to it (and shows it, for an image)."""

    id: uuid.UUID
    filename: str
    media_type: str
    size: int
    inline: bool


@dataclass(frozen=True)
class Entry:
    """A message of the thread."""

    id: uuid.UUID
    mine: bool
    author: str
    sent_at: datetime
    body: str
    attachments: list[AttachmentLink]
    new: bool


@dataclass(frozen=True)
class Document:
    """A signed PDF issued at closing."""

    attachment_id: uuid.UUID
    label: str
    filename: str


@dataclass(frozen=True)
class Thread:
    entries: list[Entry]
    documents: list[Document]


@dataclass
class Opening:
    """What the opening form shows back after a refusal (never a file)."""

    specialty: str = ""
    subject: str = ""
    description: str = ""
    answers: dict[str, str] = field(default_factory=dict)


def _specialty_label(code: str | None, language: str) -> str:
    names = catalogue(language).specialties
    return names.get(code or "", code or "")


def _rows(
    summaries: Sequence[ConsultationSummary],
    language: str,
    translate: Callable[[str], str],
    *,
    open_first: bool = True,
) -> list[Row]:
    rows = []
    for item in summaries:
        times = [
            t for t in (item.created_at, item.taken_at, item.closed_at, item.cancelled_at) if t
        ]
        status = ConsultationStatus(item.status)
        rows.append(
            Row(
                id=item.id,
                specialty=_specialty_label(item.specialty, language),
                status=status.value,
                status_label=translate(STATUS_LABELS[status]),
                subject=item.subject,
                last_activity=max(times) if times else None,
                waiting_since=item.created_at if status is ConsultationStatus.REQUESTED else None,
                unread=item.unread or 0,
                open=status in service.OPEN,
            )
        )
    if open_first:
        rows.sort(key=lambda r: not r.open)  # stable: newest first within each group
    return rows


def _thread(messages: Sequence[MessageRead], *, reader_side: str, unread: int) -> Thread:
    """The messages oldest first (newest last); the last ``unread`` ones of the other
    side are new (``unread_counts`` counts exactly those)."""
    others = [m.id for m in messages if m.author != reader_side]
    new = set(others[len(others) - unread :]) if unread else set()
    entries = []
    documents = []
    for message in messages:
        attachments = [
            AttachmentLink(
                id=a.id,
                filename=a.filename,
                media_type=a.media_type,
                size=a.size,
                inline=a.media_type in INLINE_TYPES,
            )
            for a in message.attachments
        ]
        entries.append(
            Entry(
                id=message.id,
                mine=message.author == reader_side,
                author=message.author,
                sent_at=message.created_at,
                body=message.body,
                attachments=attachments,
                new=message.id in new,
            )
        )
        if message.author == "practitioner":
            for a in message.attachments:
                if a.filename == REPORT_NAME and a.media_type == "application/pdf":
                    documents.append(Document(a.id, _n("Signed report (PDF)"), a.filename))
                elif a.filename == PRESCRIPTION_NAME and a.media_type == "application/pdf":
                    documents.append(Document(a.id, _n("Signed prescription (PDF)"), a.filename))
    return Thread(entries=entries, documents=documents)


def _record_and_thread(
    db: DB, principal: Principal, clock: datetime, consultation: Consultation, language: str
) -> tuple[ConsultationRead, Thread]:
    """The record as the API's GET shapes it, and its messages as the API's message
    list shows them, which then marks them read (the same service calls, in order)."""
    record = views.consultation_read(
        db, consultation, reader=principal, now=clock, language=language
    )
    rows = db.scalars(
        service.messages_statement(principal=principal, consultation=consultation, now=clock)
    ).all()
    messages = views.messages_read(db, principal, consultation, rows, clock)
    service.mark_read(session=db, principal=principal, consultation=consultation, messages=rows)
    side = "patient" if principal.is_patient else "practitioner"
    thread = _thread(messages, reader_side=side, unread=record.unread or 0)
    return record, thread


def _flash(request: Request, done: str | None) -> Flash | None:
    if done not in FLASHES:
        return None
    return Flash(render.translator(render.language_of(request))(FLASHES[done]), "success")


# -- forms: the API's limits and models, refusals named by their field ------------------


class FormRefused(InvalidField):
    """A form field the API's model refuses, named in the page's words."""


_FIELD_PROBLEMS = {
    "missing": _n("{field}: this field is required"),
    "string_too_short": _n("{field}: at least {minimum} characters"),
    "string_too_long": _n("{field}: at most {maximum} characters"),
    "too_short": _n("{field}: at least {minimum} items"),
    "too_long": _n("{field}: at most {maximum} items"),
}


def validated(
    request: Request, template: str, values: dict[str, Any], model: type[M], data: Any
) -> M:
    """``data`` as the API's ``model``; if refused, the form ``template`` is shown again
    with ``values``, the refused field marked (``invalid``), and the refusal named."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else ""
        on_refusal(request, template, **{**values, "invalid": name})
        label = Message(FIELD_LABELS.get(name, name))
        ours = (first.get("ctx") or {}).get("error")
        if isinstance(ours, InvalidField):
            raise FormRefused(_n("{field}: {problem}"), field=label, problem=ours.message) from None
        template_of = _FIELD_PROBLEMS.get(first["type"], _n("{field}: this value is refused"))
        context = first.get("ctx") or {}
        raise FormRefused(
            template_of,
            field=label,
            minimum=context.get("min_length", ""),
            maximum=context.get("max_length", ""),
        ) from None


async def form_upload(request: Request, settings: AppSettings, text_fields: set[str]) -> Upload:
    """The text fields and files of a page's multipart form, within the API's limits.

    A multipart body is read by the API's streaming reader (``read_multipart``), in
    memory: never by Starlette's parser, which spools files to disk. When its CSRF
    token is in the form rather than the header (a form sent without JavaScript), the
    token is checked here first (``csrf.confirm``), before anything is done with the
    rest (the route is marked ``csrf.reads_files``). A form without files may come
    URL-encoded: the CSRF check parsed it already; its fields are held to the same
    limits."""
    limits = Limits(settings.attachments_per_message, settings.attachment_max_bytes)
    allowed = text_fields | {csrf.FIELD}
    kind = media_type(request)
    if kind == "multipart/form-data":
        upload = await read_multipart(request, text_fields=allowed, limits=limits)
        sent = upload.fields.pop(csrf.FIELD, None)
        if getattr(request.state, "csrf_deferred", False):
            csrf.confirm(request, sent)
        return upload
    if kind != "application/x-www-form-urlencoded":
        raise InvalidUpload(_n("send application/json, or multipart/form-data to attach files"))
    form = await request.form()
    try:
        return await _parsed(form, allowed, limits)
    finally:
        await form.close()


async def _parsed(form: FormData, allowed: set[str], limits: Limits) -> Upload:
    upload = Upload()
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            if name != FILE_FIELD:
                raise InvalidUpload(_n("files are sent in the {field!r} field"), field=FILE_FIELD)
            if not value.filename and not value.size:
                continue  # a file input left empty
            if len(upload.files) > limits.max_files:
                continue  # one too many is kept: the service refuses the count
            # At most one byte past the limit is read: the service refuses the size.
            content = await value.read(limits.max_file_bytes + 1)
            upload.files.append(UploadedFile(value.filename, value.content_type, content))
            continue
        if name not in allowed:
            expected = ", ".join(sorted(allowed | {FILE_FIELD}))
            raise InvalidUpload(
                _n("unexpected field {name!r}; the fields are: {expected}"),
                name=name,
                expected=expected,
            )
        if name in upload.fields:
            raise InvalidUpload(_n("the field {name!r} is sent twice"), name=name)
        if len(value.encode()) > limits.max_field_bytes:
            raise InvalidUpload(
                _n("the field {name!r} is longer than {limit} bytes"),
                name=name,
                limit=limits.max_field_bytes,
            )
        upload.fields[name] = value
    return upload


# -- downloads ---------------------------------------------------------------------------


def _download(
    *,
    db: DB,
    principal: Principal,
    clock: datetime,
    blobs: Blobs,
    consultation: Consultation,
    attachment_id: uuid.UUID,
    inline: bool,
) -> Response:
    """The API's download (``service.read_attachment``, an audited read through the
    policy) of an attachment of ``consultation``; inline only for an image the
    platform re-encoded, sandboxed."""
    attachment, content = service.read_attachment(
        session=db,
        blobs=blobs,
        principal=principal,
        attachment_id=attachment_id,
        now=clock,
        consultation_id=consultation.id,
    )
    kind = attachment.media_type or "application/octet-stream"
    name = attachment.filename or "attachment"
    if inline and kind not in INLINE_TYPES:
        raise NotFound("attachment", attachment_id)
    disposition = "inline" if inline else content_disposition(name)
    return Response(
        content,
        media_type=kind,
        headers={
            "Content-Disposition": disposition,
            "Content-Security-Policy": SANDBOXED,
            "X-Content-Type-Options": "nosniff",
        },
    )


AttachmentId = Annotated[uuid.UUID, Path()]


MESSAGE_AGAIN = "consultations/message.html"


def _message_values(request: Request, body: str) -> dict[str, Any]:
    base = request.url.path.removesuffix("/messages")
    return {"base": base, "body": body, "choose_again": CHOOSE_FILES_AGAIN}


async def message_upload(request: Request, settings: AppSettings) -> Upload:
    """The message form's text and files (read before the route, as the API's
    ``message_input``): a refusal while reading shows the empty form again."""
    on_refusal(request, MESSAGE_AGAIN, **_message_values(request, ""))
    return await form_upload(request, settings, {"body"})


MessageUpload = Annotated[Upload, Depends(message_upload)]


# -- the patient ------------------------------------------------------------------------

NEW = "consultations/new.html"
PATIENT_VIEW = "consultations/patient.html"
OPENING_FIELDS = {"specialty", "subject", "description"}


def _opening_values(request: Request, opening: Opening) -> dict[str, Any]:
    return {
        "catalogue": catalogue(render.language_of(request)),
        "opening": opening,
        "invalid": None,
        "choose_again": CHOOSE_FILES_AGAIN,
    }


@router.get("/patient", dependencies=PATIENT)
def patient_home(
    *,
    request: Request,
    db: DB,
    principal: PagePrincipal,
    clock: Now,
    paging: Paging,
    done: str | None = None,
) -> Response:
    """The patient's consultations, open ones first (the API's list, with its unread
    counts and subjects, the patient's own)."""
    statement = service.list_consultations(principal=principal, now=clock)
    rows, total = fetch_page(db, statement, paging)
    unread = service.unread_counts(session=db, principal=principal, consultations=rows, now=clock)
    summaries = [
        views.summary(c, with_subject=True, specialty=principal.specialty, unread=unread[c.id])
        for c in rows
    ]
    language = render.language_of(request)
    listed = _rows(summaries, language, render.translator(language))
    return render.page(
        request,
        "consultations/patient_home.html",
        open_rows=[r for r in listed if r.open],
        past_rows=[r for r in listed if not r.open],
        total=total,
        paging=paging,
        flash=_flash(request, done),
    )


@router.get("/patient/consultations/new", dependencies=PATIENT)
def new_consultation_page(request: Request, specialty: str = "") -> Response:
    chosen = specialty if specialty in SPECIALTIES else ""
    return render.page(request, NEW, **_opening_values(request, Opening(specialty=chosen)))


async def opening_upload(request: Request, settings: AppSettings) -> Upload:
    """The opening form's fields and files (read before the route, as the API's
    ``opening_input``): a refusal while reading shows the empty form again."""
    on_refusal(request, NEW, **_opening_values(request, Opening()))
    questions = {f"q_{q.code}" for q in catalogue().questions}
    return await form_upload(request, settings, OPENING_FIELDS | questions)


@router.post("/patient/consultations/new", dependencies=PATIENT)
@csrf.reads_files
def open_consultation(
    *,
    request: Request,
    db: DB,
    principal: PagePrincipal,
    clock: Now,
    settings: AppSettings,
    blobs: Blobs,
    upload: Annotated[Upload, Depends(opening_upload)],
) -> Response:
    """The API's ``POST /consultations`` as a multipart form: the same model, the same
    limits and checks of its files, the same service. Not a coroutine, as the API's
    route: the service's work (sealing, images, the database) runs off the event loop."""
    questions = [q.code for q in catalogue().questions]
    opening = Opening(
        specialty=upload.fields.get("specialty", ""),
        subject=upload.fields.get("subject", ""),
        description=upload.fields.get("description", ""),
        answers={
            code: upload.fields[f"q_{code}"].strip()
            for code in questions
            if upload.fields.get(f"q_{code}", "").strip()
        },
    )
    values = _opening_values(request, opening)
    on_refusal(request, NEW, **values)
    data = validated(
        request,
        NEW,
        values,
        ConsultationCreate,
        {
            "specialty": opening.specialty,
            "subject": opening.subject.strip(),
            "description": opening.description.strip(),
            "questionnaire": opening.answers,
        },
    )
    consultation = service.open_consultation(
        session=db,
        settings=settings,
        blobs=blobs,
        principal=principal,
        data=data,
        files=upload.files,
        now=clock,
    )
    return render.redirect(request, f"/patient/consultations/{consultation.id}?done=opened")


def _patient_page(
    request: Request,
    db: DB,
    principal: Principal,
    clock: datetime,
    consultation: Consultation,
    **extra: Any,
) -> Response:
    language = render.language_of(request)
    record, thread = _record_and_thread(db, principal, clock, consultation, language)
    status = ConsultationStatus(record.status)
    return render.page(
        request,
        PATIENT_VIEW,
        record=record,
        thread=thread,
        specialty=_specialty_label(record.specialty, language),
        status_label=STATUS_LABELS[status],
        is_open=status in service.OPEN,
        may_write=status in service.OPEN,
        closed=status is ConsultationStatus.CLOSED,
        base=f"/patient/consultations/{record.id}",
        choose_again=CHOOSE_FILES_AGAIN,
        **{"body": "", "flash": None, **extra},
    )


@router.get("/patient/consultations/{consultation_id}", dependencies=PATIENT)
def patient_consultation(
    *,
    request: Request,
    db: DB,
    principal: PagePrincipal,
    clock: Now,
    consultation: PageConsultation,
    done: str | None = None,
) -> Response:
    """The record and the thread, read as the API's GETs read them (then marked read)."""
    return _patient_page(request, db, principal, clock, consultation, flash=_flash(request, done))


@router.post("/patient/consultations/{consultation_id}/messages", dependencies=PATIENT)
@csrf.reads_files
def patient_message(
    *,
    request: Request,
    db: DB,
    principal: PagePrincipal,
    clock: Now,
    settings: AppSettings,
    blobs: Blobs,
    upload: MessageUpload,  # first: it confirms the form's CSRF token (reads_files)
    consultation: PageConsultation,
) -> Response:
    return _post_message(
        upload=upload,
        request=request,
        db=db,
        principal=principal,
        clock=clock,
        settings=settings,
        blobs=blobs,
        consultation=consultation,
        space="/patient",
    )


@router.post("/patient/consultations/{consultation_id}/cancel", dependencies=PATIENT)
def patient_cancel(
    *,
    request: Request,
    db: DB,
    principal: PagePrincipal,
    clock: Now,
    settings: AppSettings,
    consultation: PageConsultation,
) -> Response:
    service.cancel(
        session=db, settings=settings, principal=principal, consultation=consultation, now=clock
    )
    return render.redirect(request, f"/patient/consultations/{consultation.id}?done=cancelled")


@router.get(
    "/patient/consultations/{consultation_id}/attachments/{attachment_id}",
    dependencies=PATIENT,
)
def patient_attachment(
    *,
    db: DB,
    principal: PagePrincipal,
    clock: Now,
    blobs: Blobs,
    consultation: PageConsultation,
    attachment_id: AttachmentId,
) -> Response:
    return _download(
        db=db,
        principal=principal,
        clock=clock,
        blobs=blobs,
        consultation=consultation,
        attachment_id=attachment_id,
        inline=False,
    )


@router.get(
    "/patient/consultations/{consultation_id}/attachments/{attachment_id}/view",
    dependencies=PATIENT,
)
def patient_attachment_view(
    *,
    db: DB,
    principal: PagePrincipal,
    clock: Now,
    blobs: Blobs,
    consultation: PageConsultation,
    attachment_id: AttachmentId,
) -> Response:
    return _download(
        db=db,
        principal=principal,
        clock=clock,
        blobs=blobs,
        consultation=consultation,
        attachment_id=attachment_id,
        inline=True,
    )


# -- messages, both sides ----------------------------------------------------------------


def _post_message(
    *,
    request: Request,
    db: DB,
    principal: Principal,
    clock: datetime,
    settings: AppSettings,
    blobs: Blobs,
    consultation: Consultation,
    upload: Upload,
    space: str,
) -> Response:
    """The API's ``POST /consultations/{id}/messages`` as a multipart form. A refusal
    shows the message form again, alone, with the text written (not the thread: showing
    it would read the record again for a message that was not sent)."""
    values = _message_values(request, upload.fields.get("body", ""))
    on_refusal(request, MESSAGE_AGAIN, **values)
    data = validated(request, MESSAGE_AGAIN, values, MessageCreate, {"body": values["body"]})
    service.post_message(
        session=db,
        settings=settings,
        blobs=blobs,
        principal=principal,
        consultation=consultation,
        body=data.body,
        files=upload.files,
        now=clock,
    )
    return render.redirect(request, f"{space}/consultations/{consultation.id}?done=sent")


# -- the practitioner -------------------------------------------------------------------

PRACTITIONER_VIEW = "consultations/practitioner.html"
QUEUE = "consultations/practitioner_home.html"
CLOSE_AGAIN = "consultations/close.html"
HAND_BACK_AGAIN = "consultations/hand_back.html"


@dataclass(frozen=True)
class Waiting:
    """A waiting consultation as the queue shows it: nothing but its wait."""

    entry: str
    position: int
    waiting_since: datetime
    waiting_minutes: int


def _in_care_rows(
    *,
    request: Request,
    db: DB,
    principal: Principal,
    clock: datetime,
    paging: PageParams,
    status: ConsultationStatus | None,
) -> tuple[list[Row], int]:
    """The practitioner's consultations as the API's list shows them to a practitioner:
    nothing sealed opened (no subject, no patient), so browsing reads no record."""
    statement = service.list_consultations(principal=principal, now=clock, status=status)
    rows, total = fetch_page(db, statement, paging)
    unread = service.unread_counts(session=db, principal=principal, consultations=rows, now=clock)
    summaries = [
        views.summary(c, with_subject=False, specialty=principal.specialty, unread=unread[c.id])
        for c in rows
    ]
    language = render.language_of(request)
    return _rows(summaries, language, render.translator(language)), total


@router.get("/practitioner", dependencies=PRACTITIONER)
def practitioner_home(
    *,
    request: Request,
    db: DB,
    principal: PagePrincipal,
    clock: Now,
    paging: Paging,
    done: str | None = None,
) -> Response:
    """The queue of the practitioner's specialty (``GET /queue``'s service: positions
    and waiting times only), then their consultations in progress."""
    values = _queue_values(request=request, db=db, principal=principal, clock=clock, paging=paging)
    return render.page(request, QUEUE, **values, flash=_flash(request, done))


def _queue_values(
    *, request: Request, db: DB, principal: Principal, clock: datetime, paging: PageParams
) -> dict[str, Any]:
    waiting, waiting_total = service.queue(
        session=db, principal=principal, now=clock, limit=paging.limit, offset=paging.offset
    )
    queue = [
        Waiting(
            entry=w.entry,
            position=w.position,
            waiting_since=w.waiting_since,
            waiting_minutes=w.waiting_seconds // 60,
        )
        for w in waiting
    ]
    in_progress, _ = _in_care_rows(
        request=request,
        db=db,
        principal=principal,
        clock=clock,
        paging=PageParams(limit=100, offset=0),
        status=ConsultationStatus.IN_PROGRESS,
    )
    return {
        "queue": queue,
        "waiting_total": waiting_total,
        "specialty": _specialty_label(principal.specialty, render.language_of(request)),
        "in_progress": in_progress,
    }


def _on_refused_take(request: Request, db: DB, principal: Principal, clock: datetime) -> None:
    """A take refused (the queue empty, the entry taken by someone else): the queue
    page again, with the refusal (the queue as it was read before the attempt)."""
    first = PageParams(limit=20, offset=0)
    values = _queue_values(request=request, db=db, principal=principal, clock=clock, paging=first)
    on_refusal(request, QUEUE, **values)


@router.post("/practitioner/queue/take", dependencies=PRACTITIONER)
def take_next(
    request: Request, db: DB, principal: PagePrincipal, clock: Now, settings: AppSettings
) -> Response:
    _on_refused_take(request, db, principal, clock)
    consultation = service.take_next(session=db, settings=settings, principal=principal, now=clock)
    return render.redirect(request, f"/practitioner/consultations/{consultation.id}?done=taken")


@router.post("/practitioner/queue/{entry}/take", dependencies=PRACTITIONER)
def take_entry(
    *,
    request: Request,
    db: DB,
    principal: PagePrincipal,
    clock: Now,
    settings: AppSettings,
    entry: QueueEntryId,
) -> Response:
    _on_refused_take(request, db, principal, clock)
    consultation = service.take_entry(
        session=db, settings=settings, principal=principal, entry=entry, now=clock
    )
    return render.redirect(request, f"/practitioner/consultations/{consultation.id}?done=taken")


@router.get("/practitioner/patients", dependencies=PRACTITIONER)
def practitioner_patients(
    request: Request, db: DB, principal: PagePrincipal, clock: Now, paging: Paging
) -> Response:
    """The consultations of the practitioner's current patients (the API's list: in
    care, nothing sealed opened; each record names its patient when opened)."""
    rows, total = _in_care_rows(
        request=request, db=db, principal=principal, clock=clock, paging=paging, status=None
    )
    return render.page(
        request, "consultations/practitioner_patients.html", rows=rows, total=total, paging=paging
    )


@router.get("/practitioner/consultations/{consultation_id}", dependencies=PRACTITIONER)
def practitioner_consultation(
    *,
    request: Request,
    db: DB,
    principal: PagePrincipal,
    clock: Now,
    consultation: PageConsultation,
    done: str | None = None,
) -> Response:
    """The record with the patient's names and age (the API's read for the
    practitioner in charge), the questionnaire's answers, the thread (then read)."""
    language = render.language_of(request)
    record, thread = _record_and_thread(db, principal, clock, consultation, language)
    status = ConsultationStatus(record.status)
    in_charge = record.practitioner is not None and record.practitioner.id == (
        principal.practitioner_id
    )
    return render.page(
        request,
        PRACTITIONER_VIEW,
        record=record,
        thread=thread,
        specialty=_specialty_label(record.specialty, language),
        status_label=STATUS_LABELS[status],
        in_progress=status is ConsultationStatus.IN_PROGRESS and in_charge,
        base=f"/practitioner/consultations/{record.id}",
        choose_again=CHOOSE_FILES_AGAIN,
        flash=_flash(request, done),
    )


@router.post("/practitioner/consultations/{consultation_id}/messages", dependencies=PRACTITIONER)
@csrf.reads_files
def practitioner_message(
    *,
    request: Request,
    db: DB,
    principal: PagePrincipal,
    clock: Now,
    settings: AppSettings,
    blobs: Blobs,
    upload: MessageUpload,  # first: it confirms the form's CSRF token (reads_files)
    consultation: PageConsultation,
) -> Response:
    return _post_message(
        upload=upload,
        request=request,
        db=db,
        principal=principal,
        clock=clock,
        settings=settings,
        blobs=blobs,
        consultation=consultation,
        space="/practitioner",
    )


@router.post("/practitioner/consultations/{consultation_id}/hand-back", dependencies=PRACTITIONER)
def practitioner_hand_back(
    *,
    request: Request,
    db: DB,
    principal: PagePrincipal,
    clock: Now,
    settings: AppSettings,
    consultation: PageConsultation,
    reason: Annotated[str, Form(max_length=1_000)] = "",
) -> Response:
    values = {"base": f"/practitioner/consultations/{consultation.id}", "reason": reason}
    on_refusal(request, HAND_BACK_AGAIN, **values, invalid=None)
    data = validated(request, HAND_BACK_AGAIN, values, HandBackInput, {"reason": reason})
    service.hand_back(
        session=db,
        settings=settings,
        principal=principal,
        consultation=consultation,
        reason=data.reason,
        now=clock,
    )
    return render.redirect(request, "/practitioner?done=handed_back")


@router.post("/practitioner/consultations/{consultation_id}/close", dependencies=PRACTITIONER)
def practitioner_close(
    *,
    request: Request,
    db: DB,
    principal: PagePrincipal,
    clock: Now,
    settings: AppSettings,
    blobs: Blobs,
    consultation: PageConsultation,
    report: Annotated[str, Form(max_length=50_000)] = "",
    prescription: Annotated[str, Form(max_length=20_000)] = "",
    acts: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """The API's close: report, prescription (one item per line) and act codes; the
    signed report and prescription are attached in the same transaction."""
    values = {
        "base": f"/practitioner/consultations/{consultation.id}",
        "report": report,
        "prescription": prescription,
        "acts": acts,
    }
    on_refusal(request, CLOSE_AGAIN, **values, invalid=None)
    codes = [code for code in acts.replace(",", " ").split() if code]
    data = validated(
        request,
        CLOSE_AGAIN,
        values,
        CloseInput,
        {"report": report, "prescription": prescription or None, "acts": codes},
    )
    service.close(
        session=db,
        settings=settings,
        blobs=blobs,
        principal=principal,
        consultation=consultation,
        data=data,
        now=clock,
    )
    return render.redirect(request, f"/practitioner/consultations/{consultation.id}?done=closed")


@router.get(
    "/practitioner/consultations/{consultation_id}/attachments/{attachment_id}",
    dependencies=PRACTITIONER,
)
def practitioner_attachment(
    *,
    db: DB,
    principal: PagePrincipal,
    clock: Now,
    blobs: Blobs,
    consultation: PageConsultation,
    attachment_id: AttachmentId,
) -> Response:
    return _download(
        db=db,
        principal=principal,
        clock=clock,
        blobs=blobs,
        consultation=consultation,
        attachment_id=attachment_id,
        inline=False,
    )


@router.get(
    "/practitioner/consultations/{consultation_id}/attachments/{attachment_id}/view",
    dependencies=PRACTITIONER,
)
def practitioner_attachment_view(
    *,
    db: DB,
    principal: PagePrincipal,
    clock: Now,
    blobs: Blobs,
    consultation: PageConsultation,
    attachment_id: AttachmentId,
) -> Response:
    return _download(
        db=db,
        principal=principal,
        clock=clock,
        blobs=blobs,
        consultation=consultation,
        attachment_id=attachment_id,
        inline=True,
    )

"""The documents domain's pages: ``/documents/verify``, the address printed on every
signed report and prescription.

Anyone holding a document (a pharmacist, another doctor) pastes its code or sends the
PDF and reads whether Hippocrate issued it unchanged: the same services as
``POST /api/v1/documents/verify/code`` and ``/verify/file``, admitted by the same
throttle (``Admitted``: per client address and overall, 429 past either). The answer
says nothing of what the document contains nor whose it is, and nothing sent is kept.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Form, Request
from fastapi.responses import Response

from hippocrate.api.deps import DB, AppSettings
from hippocrate.consultations.uploads import Limits, media_type, read_multipart
from hippocrate.documents import service
from hippocrate.documents.api import Admitted
from hippocrate.errors import HippocrateError
from hippocrate.i18n import _n
from hippocrate.web import csrf, render
from hippocrate.web.deps import pages_router
from hippocrate.web.errors import on_refusal

router = pages_router()
public = pages_router(public=True)

VERIFY = "documents/verify.html"
FILE_FIELD = "files"

#: The services' answers (``documents/service.py``: English, for the API's callers),
#: marked here so the page says them in its language.
REASONS = (
    _n("this is not a Hippocrate verification code"),
    _n("Hippocrate issued no document with this code"),
    _n("Hippocrate issued a document with this code"),
    _n("this file carries no signature of Hippocrate"),
    _n("this file is not signed by this Hippocrate platform"),
    _n("this file was changed after Hippocrate signed it"),
    _n("Hippocrate has no record of issuing this file"),
    _n("Hippocrate issued this document, and it is unchanged"),
)


class NoFile(HippocrateError):
    status = 422
    title = _n("Nothing to check")

    def __init__(self) -> None:
        super().__init__(_n("choose the PDF file to check"))


async def _refused_here(request: Request) -> None:
    """A refusal before the route's own values are read (the throttle's 429): the
    empty form again, with the refusal."""
    on_refusal(request, VERIFY, code="", check=None, checked=None)


@public.get("/documents/verify")
def verify_page(request: Request) -> Response:
    return render.page(request, VERIFY, code="", check=None, checked=None)


@public.post("/documents/verify/code", dependencies=[Depends(_refused_here), Admitted])
def verify_code(
    request: Request, db: DB, code: Annotated[str, Form(max_length=40)] = ""
) -> Response:
    """The API's check of a code, as a page (what was typed is shown back, kept nowhere)."""
    on_refusal(request, VERIFY, code=code, check=None, checked=None)
    check = service.check_code(session=db, code=code)
    return render.page(request, VERIFY, code=code, check=check, checked="code")


async def sent_pdf(request: Request, settings: AppSettings) -> bytes:
    """The one file of the form, read in memory by the upload reader (at most the size
    of an attachment), its CSRF token checked first when it came in the form
    (``csrf.reads_files``)."""
    limits = Limits(max_files=1, max_file_bytes=settings.attachment_max_bytes)
    if media_type(request) != "multipart/form-data":
        raise NoFile()
    upload = await read_multipart(request, text_fields={csrf.FIELD}, limits=limits)
    sent = upload.fields.pop(csrf.FIELD, None)
    if getattr(request.state, "csrf_deferred", False):
        csrf.confirm(request, sent)
    if not upload.files or not upload.files[0].content:
        raise NoFile()
    return upload.files[0].content


@public.post("/documents/verify/file", dependencies=[Depends(_refused_here), Admitted])
@csrf.reads_files
def verify_file(
    request: Request,
    db: DB,
    settings: AppSettings,
    content: Annotated[bytes, Depends(sent_pdf)],
) -> Response:
    """The API's check of a whole file, sent with the page's form (multipart). Not a
    coroutine: the signature check runs its own event loop, as under the API's route."""
    check = service.check_file(session=db, settings=settings, data=content)
    return render.page(request, VERIFY, code="", check=check, checked="file")

"""The public page "Is this message really from Hippocrate?" (``/verifier``).

Anyone pastes a code or a whole message they received and reads whether the platform
sent it: the same check as ``POST /api/v1/messages/check`` (``notify/check.py``), the
same throttle, the same words, in the visitor's language, as a page that works without
JavaScript. Nothing of the recipient is shown, and nothing of what was pasted is kept
(the page echoes it back in the form, escaped). No session and no state change; its
form carries the CSRF token like every page's.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse

from hippocrate.api.deps import DB, AppSettings
from hippocrate.notify import check, wording
from hippocrate.notify.api import admit_check
from hippocrate.web import render
from hippocrate.web.deps import pages_router
from hippocrate.web.errors import on_refusal

MAX_TEXT = 20_000

router = pages_router(public=True)


@router.get("/verifier")
def check_page(request: Request, settings: AppSettings) -> HTMLResponse:
    return render.page(request, "notify/check.html", **_advice(request, settings))


@router.post("/verifier", dependencies=[Depends(admit_check)])
def check_page_answer(
    request: Request,
    text: Annotated[str, Form(max_length=MAX_TEXT)],
    db: DB,
    settings: AppSettings,
) -> HTMLResponse:
    advice = _advice(request, settings, text=text)
    on_refusal(request, "notify/check.html", **advice)  # no code in the text: 422
    answer = check.check_message(session=db, text=text, public_url=settings.public_url)
    read = wording.read(
        answer, language=render.language_of(request), public_url=settings.public_url
    )
    return render.page(request, "notify/check.html", **{**advice, "answer": read})


def _advice(request: Request, settings: Any, *, text: str = "") -> dict[str, Any]:
    """What the page always says: what a genuine message never holds, how to be sure."""
    empty = wording.read(
        check.Answer(False, None, None, False, 0, None),
        language=render.language_of(request),
        public_url=settings.public_url,
    )
    return {
        "text": text,
        "answer": None,
        "never": empty.never_contains,
        "be_sure": empty.how_to_be_sure,
    }

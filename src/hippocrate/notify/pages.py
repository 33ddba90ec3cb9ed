"""The public page "Is this message really from Hippocrate?" (``/verifier``).

Anyone pastes a code or a whole message they received and reads whether the platform
sent it: the same check as ``POST /api/v1/messages/check`` (``notify/check.py``), the
same throttle, the same words, in the request's language, as a page that works without
JavaScript. Nothing of the recipient is shown, and nothing of what was pasted is kept
(the page echoes it back in the form, escaped). No session and no state change: a
forged cross-site POST could only show its sender a page.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Form
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from hippocrate.api.deps import DB, AppSettings, public_router
from hippocrate.api.problems import Language
from hippocrate.errors import HippocrateError
from hippocrate.i18n import _n, render
from hippocrate.notify import check, wording
from hippocrate.notify.api import admit_check

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
MAX_TEXT = 20_000

router = public_router(include_in_schema=False)

_WORDS = {
    "title": _n("Is this message really from Hippocrate?"),
    "intro": _n(
        "Paste the verification code of a message you received, or the whole message: "
        "you will learn whether Hippocrate sent it. Nothing you paste is kept."
    ),
    "label": _n("The code or the message"),
    "submit": _n("Check"),
    "error": _n("Nothing to check"),
    "sent": _n("Sent by Hippocrate"),
    "not_sent": _n("Not sent by Hippocrate"),
    "never": _n("A genuine message from Hippocrate never holds"),
}


@router.get("/verifier", response_class=HTMLResponse)
def check_page(settings: AppSettings, language: Language) -> HTMLResponse:
    return _page(settings=settings, language=language)


@router.post("/verifier", response_class=HTMLResponse, dependencies=[Depends(admit_check)])
def check_page_answer(
    text: Annotated[str, Form(max_length=MAX_TEXT)],
    db: DB,
    settings: AppSettings,
    language: Language,
) -> HTMLResponse:
    try:
        answer = check.check_message(session=db, text=text, public_url=settings.public_url)
    except HippocrateError as exc:
        # The same refusal the API gives (no code in the text), shown on the page.
        return _page(
            settings=settings,
            language=language,
            text=text,
            error=exc.detail_in(language),
            status=exc.status,
        )
    read = wording.read(answer, language=language, public_url=settings.public_url)
    return _page(settings=settings, language=language, text=text, answer=read)


def _page(
    *,
    settings: Any,
    language: str,
    text: str = "",
    answer: Any = None,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    empty = wording.read(
        check.Answer(False, None, None, False, 0, None),
        language=language,
        public_url=settings.public_url,
    )
    body = (
        _environment()
        .get_template("notify/check.html")
        .render(
            language=language,
            words={k: render(v, {}, language) for k, v in _WORDS.items()},
            action="/verifier",
            text=text,
            answer=answer,
            error=error,
            never=empty.never_contains,
            be_sure=empty.how_to_be_sure,
        )
    )
    response = HTMLResponse(body, status_code=status)
    response.headers["Content-Language"] = language
    response.headers["Vary"] = "Accept-Language"
    return response


@functools.cache
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(("html",)),
        trim_blocks=True,
        lstrip_blocks=True,
    )

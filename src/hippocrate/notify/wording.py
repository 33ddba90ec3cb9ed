"""What the public check of a message says, in the request's language.

English messages marked for the catalogues; their French translations reuse the words
of the emails' own warnings (``templates.py``). The values placed in them are the
platform's address, a day and counts: never anything of the text checked.
"""

from __future__ import annotations

from hippocrate.i18n import _n, render
from hippocrate.notify.check import Answer, Kind
from hippocrate.notify.schemas import MessageCheckRead

_KIND = {
    Kind.LINK: _n(
        "a message with a single-use link to confirm an email address or to choose a password"
    ),
    Kind.WAITING: _n("a notice that something waits in your space"),
    Kind.SECURITY: _n("a security notice about an account"),
}
_SENT = _n("Hippocrate sent a message carrying this code on {day}: {kind}.")
_NOT_SENT = _n(
    "Hippocrate sent no message carrying this code: this message does not come from us. "
    "Do not open any link in it and do not answer it."
)
_COPIED = _n(
    "A genuine code proves only that Hippocrate sent it to someone: whoever received one "
    "can copy it into a message of their own."
)
_OTHER_KIND = _n(
    "This text does not read like the message Hippocrate sent with this code: the code "
    "may have been copied into another message. Do not open any link in it and do not "
    "answer it."
)
_FOREIGN_LINKS = _n(
    "This text holds links that do not lead to {public_url} ({count}): a message from "
    "Hippocrate holds no other link. Do not open them."
)
_NEVER = (
    _n(
        "a link to sign in: to sign in, always type the address {public_url} yourself in "
        "your browser"
    ),
    _n(
        "a link that does not begin exactly with {public_url}/ (its only links serve "
        "once, to confirm an email address or to choose a password)"
    ),
    _n("medical information: Hippocrate never sends medical information by email"),
    _n(
        "a request for your password, a code, your social security number (NIR), your "
        "bank details or a payment, by email or by phone"
    ),
)
_BE_SURE = _n(
    "To be sure a message was sent to you, sign in by typing the address {public_url} "
    "yourself and open \u201cEmails received\u201d in your space: the code of every "
    "message sent to you is listed there."
)


def read(answer: Answer, *, language: str, public_url: str) -> MessageCheckRead:
    """The answer to a check, in ``language``; the same fields whatever was found."""
    base = public_url.rstrip("/")

    def say(template: str, **values: object) -> str:
        return render(template, values, language)

    warnings: list[str] = []
    if answer.sent and answer.kind is not None and answer.sent_on is not None:
        kind = say(_KIND[answer.kind])
        verdict = f"{say(_SENT, day=answer.sent_on.isoformat(), kind=kind)} {say(_COPIED)}"
        if answer.other_kind:
            warnings.append(say(_OTHER_KIND))
    else:
        verdict = say(_NOT_SENT)
    if answer.foreign_links:
        warnings.append(say(_FOREIGN_LINKS, public_url=base, count=answer.foreign_links))
    return MessageCheckRead(
        sent_by_hippocrate=answer.sent,
        sent_on=answer.sent_on if answer.sent else None,
        kind=answer.kind if answer.sent else None,
        verdict=verdict,
        warnings=warnings,
        never_contains=[say(text, public_url=base) for text in _NEVER],
        how_to_be_sure=say(_BE_SURE, public_url=base),
    )

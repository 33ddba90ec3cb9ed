"""Is this message really from Hippocrate? The public check of a received message.

Anyone pastes a verification code, or the whole text of a message they received, and
learns whether a message carrying that code was sent by this platform, on which day,
and its kind in generic words (:class:`Kind`). Nothing else: no address, no name, no
account or email id, no exact template (which could tell a practitioner or an
administrator from a patient), and not whether the recipient's account still exists
(emails are kept when an account is deleted or a patient shredded, and the lookup
opens nothing of the account).

Guaranteed:
    - One indexed lookup per check, of :data:`MAX_CANDIDATES` digests whatever the text
      (the candidates found, then random digests that match nothing), reading columns
      only: no sealed value is opened, no data key unwrapped, known code or not. The
      answer has the same fields either way; the matching of digests is constant-time.
    - The lookup is by keyed digest (``notify/digest.py``): the database alone cannot
      tell whether a code was sent.
    - Only messages handed to delivery (``sent_at`` set) are found: a message recorded
      but never sent, or whose delivery failed, answers as a code never sent.

Not guaranteed, and said in every answer: that the message was addressed to the person
asking. A code proves that Hippocrate sent it to someone, and whoever received one may
copy it into a message of their own; only the recipient's own check (signed in,
``POST /notifications/verify``) binds a code to them. The whole text helps against
that copy: a link that does not lead to the platform, or a text of another kind than
the message sent with the code, is reported.

Messages recorded before migration 0015 have no digest: they answer as unknown.
"""

from __future__ import annotations

import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from hippocrate.audit.recorder import recorder_of
from hippocrate.errors import HippocrateError
from hippocrate.i18n import _n
from hippocrate.notify.digest import code_digest, code_key
from hippocrate.notify.models import OutboundEmail
from hippocrate.notify.service import CODE_LENGTH, normalise_code
from hippocrate.notify.templates import TEMPLATES
from hippocrate.tags import Subject, Tag

#: The longest text a check takes: a whole email, its HTML part included, is far less.
MAX_TEXT = 20_000
#: How many codes of one text are looked up (the labelled code of an email comes first).
MAX_CANDIDATES = 8
#: A text this short may be a code typed with any separators (``k 7 p x 3 q h m``).
_SHORT = 40

#: What the throttle's 429 counts, marked for the catalogues.
WORDS = (_n("message check"),)


class Kind(StrEnum):
    """What a message was about, in words that fit several templates and no one role."""

    LINK = "link"  # a single-use link to confirm an address or choose a password
    WAITING = "waiting"  # something waits in the recipient's space
    SECURITY = "security"  # a notice about the account's security or state


#: The kind of every template. A template missing here is a programming error
#: (tests/notify/test_public_check.py checks that every template has one).
KINDS: dict[str, Kind] = {
    "verify_email": Kind.LINK,
    "reset_password": Kind.LINK,
    "invitation": Kind.LINK,
    "new_message": Kind.WAITING,
    "consultation_taken": Kind.WAITING,
    "report_ready": Kind.WAITING,
    "consultation_cancelled": Kind.WAITING,
    "patient_replied": Kind.WAITING,
    "approval_requested": Kind.WAITING,
    "approval_decided": Kind.WAITING,
    "account_locked": Kind.SECURITY,
    "second_factor_locked": Kind.SECURITY,
    "security_alert": Kind.SECURITY,
    "recovery_code_used": Kind.SECURITY,
    "account_suspended": Kind.SECURITY,
    "break_glass_opened": Kind.SECURITY,
    "account_deleted": Kind.SECURITY,
    # An Art. 34 notice of a breach (breach/notices.py renders it, not TEMPLATES).
    "breach_notice": Kind.SECURITY,
}


class NoCodeInText(HippocrateError):
    """The text holds nothing shaped like a verification code of ours."""

    status = 422
    title = _n("No verification code found")

    def __init__(self) -> None:
        super().__init__(
            _n(
                "the text holds no verification code: a Hippocrate code is {length} "
                "letters and digits, printed as K7PX-3QHM after \u201cCode de "
                "v\u00e9rification\u201d"
            ),
            length=CODE_LENGTH,
        )


@dataclass(frozen=True)
class Answer:
    """What a check found. ``email_id`` is for the audit trail only, never answered."""

    sent: bool
    sent_on: date | None
    kind: Kind | None
    #: The text reads as a message of another kind than the one sent with the code.
    other_kind: bool
    #: Links in the text that do not lead to the platform's public address.
    foreign_links: int
    email_id: uuid.UUID | None


# What a reader may type between the two halves of a code (as normalise_code strips).
_SEP = "[ \t\u00a0\\-_.\u2010\u2011\u2012\u2013\u2014\u2212]{0,3}"
_CODE = re.compile(
    rf"(?<![A-Za-z0-9])(?<![A-Za-z0-9]-)([A-Za-z0-9]{{4}}{_SEP}[A-Za-z0-9]{{4}})"
    r"(?![A-Za-z0-9])(?!-[A-Za-z0-9])"
)
_LABEL = re.compile(r"v[ée]rification\W{0,12}$", re.IGNORECASE)
_LINK = re.compile(r"https?://[^\s<>\"'()\[\]]+", re.IGNORECASE)
_SPACES = re.compile(r"\s+")


def candidates(text: str) -> list[str]:
    """The codes ``text`` may carry, normalised, at most :data:`MAX_CANDIDATES`: a short
    text taken as one code typed any way first, then the code printed after a
    "Code de vérification" label, then every other code-shaped group, in order."""
    found: list[tuple[int, str]] = []
    if len(text) <= _SHORT and (whole := normalise_code(text)) is not None:
        found.append((0, whole))
    for match in _CODE.finditer(text):
        code = normalise_code(match.group(1))
        if code is not None:
            labelled = _LABEL.search(text, max(0, match.start() - 40), match.start())
            found.append((1 if labelled else 2, code))
    ordered: list[str] = []
    for _, code in sorted(found, key=lambda pair: pair[0]):  # stable: text order kept
        if code not in ordered:
            ordered.append(code)
    return ordered[:MAX_CANDIDATES]


def check_message(*, session: Session, text: str, public_url: str) -> Answer:
    """Whether a message carrying one of the codes of ``text`` was sent by the platform
    (see the module's guarantees). Raises :class:`NoCodeInText` when the text holds no
    code, before anything is looked up. Records one ``notification:message:checked``
    event, naming the email found (its id) or nothing."""
    codes = candidates(text)
    if not codes:
        raise NoCodeInText()
    key = code_key(session)
    wanted = [code_digest(key, code) for code in codes]
    padding = [secrets.token_bytes(32) for _ in range(MAX_CANDIDATES - len(wanted))]
    rows = session.execute(
        select(
            OutboundEmail.id,
            OutboundEmail.code_digest,
            OutboundEmail.template,
            OutboundEmail.sent_at,
        ).where(
            OutboundEmail.code_digest.in_(wanted + padding),
            OutboundEmail.sent_at.is_not(None),
        )
    ).all()
    match: tuple[uuid.UUID, str, datetime] | None = None
    # Every row against every candidate, each comparison constant-time; the first
    # candidate that matches wins (the labelled code), its earliest message if several.
    for digest in reversed(wanted):
        hits = sorted(
            (row.sent_at, row.id, row.template)
            for row in rows
            if hmac.compare_digest(row.code_digest or b"", digest)
        )
        if hits:
            sent_at, email_id, template = hits[0]
            match = (email_id, template, sent_at)
    recorder = recorder_of(session)
    if recorder is not None:
        resources = (f"{Subject.ACCOUNT_NOTIFICATION.noun}:{match[0]}",) if match else ()
        recorder.event(Tag.NOTIFICATION_MESSAGE_CHECKED, resources=resources)
    foreign = _foreign_links(text, public_url)
    if match is None:
        return Answer(False, None, None, False, foreign, None)
    email_id, template, sent_at = match
    kind = KINDS[template]
    seen = _kinds_in(text)
    return Answer(True, sent_at.date(), kind, bool(seen) and kind not in seen, foreign, email_id)


def _foreign_links(text: str, public_url: str) -> int:
    """How many distinct links of ``text`` lead elsewhere than ``public_url``."""
    base = public_url.rstrip("/").lower()
    ours = (base + "/", base + "?", base + "#")
    foreign = set()
    for found in _LINK.findall(text):
        link = found.rstrip(".,;:!?").lower()
        if link != base and not link.startswith(ours):
            foreign.add(link)
    return len(foreign)


def _plain(text: str) -> str:
    return _SPACES.sub(" ", text.replace("\u2019", "'")).casefold()


_SIGNATURES = [
    (_plain(t.subject), _plain(t.paragraphs[0]), KINDS[name]) for name, t in TEMPLATES.items()
]


def _kinds_in(text: str) -> set[Kind]:
    """The kinds of the templates whose subject or first paragraph ``text`` carries."""
    plain = _plain(text)
    return {kind for subject, first, kind in _SIGNATURES if subject in plain or first in plain}

"""Sending email, and checking a verification code.

Every message carries no health data: only that something waits in the app, and a
short verification code the recipient can check there (``POST /notifications/verify``).
A phishing email, even one written with leaked medical details, carries a code that
the recipient's account never received.

Delivery is SMTP when ``HIPPOCRATE_SMTP_HOST`` is set, else a file per message in the
outbox folder (the embedded default). It happens when the caller's unit of work
commits, and never fails it: a delivery failure is recorded on the message and logged.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import uuid
from datetime import datetime
from functools import partial

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from hippocrate.access.policy import readable_emails
from hippocrate.access.principal import Principal
from hippocrate.audit.recorder import Actor, attach
from hippocrate.config import Settings
from hippocrate.db.engine import SessionFactory
from hippocrate.db.sealed import keys_of, vault_of
from hippocrate.identity.models import Account, AccountStatus
from hippocrate.notify import delivery
from hippocrate.notify.digest import code_digest, code_key
from hippocrate.notify.models import OutboundEmail
from hippocrate.notify.templates import UnsafeLink, render, template_for

log = logging.getLogger(__name__)

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I
CODE_LENGTH = 8  # 40 bits
# How many of an account's latest messages a code check searches; codes are unique
# among them. Codes are sealed with random nonces (no index), so each is opened.
CODE_WINDOW = 1000
# What a reader may type between or around the characters of a code.
_SEPARATORS = str.maketrans("", "", " \t\r\n-_.\u00a0\u2010\u2011\u2012\u2013\u2014\u2212")


# One random byte per character, reduced modulo the alphabet: uniform because 256 is a
# multiple of its 32 letters (5 bits of each byte kept), ten times cheaper than a
# secrets.choice per character (an import makes one code per patient).
assert 256 % len(CODE_ALPHABET) == 0


def new_code() -> str:
    """A short verification code, e.g. ``K7PX-3QHM`` (40 bits)."""
    size = len(CODE_ALPHABET)
    raw = "".join([CODE_ALPHABET[b % size] for b in secrets.token_bytes(CODE_LENGTH)])
    return f"{raw[:4]}-{raw[4:]}"


def normalise_code(typed: str) -> str | None:
    """The 8 characters of a code as typed (any case, spaces, dashes), or None if it
    cannot be a code of ours."""
    raw = typed.translate(_SEPARATORS).upper()
    if len(raw) != CODE_LENGTH or any(c not in CODE_ALPHABET for c in raw):
        return None
    return raw


def send(
    *,
    session: Session,
    settings: Settings,
    account: Account,
    template: str,
    now: datetime,
    links: dict[str, str] | None = None,
) -> OutboundEmail:
    """Record one email of ``template`` to ``account``'s address, to be delivered when
    the caller's unit of work commits.

    ``links`` may hold one entry, ``"link"``: the single-use token link of
    ``verify_email`` and ``reset_password``, built with
    :func:`hippocrate.notify.templates.token_link`. Templates take nothing else, so no
    caller can put health data in an email. A wrong template name or link raises
    (``UnknownTemplate``, ``UnsafeLink``: a programming error); a delivery failure
    never does.
    """
    links = dict(links or {})
    link = links.pop("link", None)
    if links:
        raise UnsafeLink(f"emails take one link, named 'link'; got {sorted(links)}")
    template_for(template)  # UnknownTemplate before anything is recorded
    code = _fresh_code(session, account.id)
    rendered = render(template, code=code, link=link, public_url=settings.public_url)
    record = OutboundEmail(
        account_id=account.id, owner_id=account.owner_id, template=template, created_at=now
    )
    record.verification_code = code
    record.code_digest = _digest(session, code)
    session.add(record)
    address = account.email
    if not address:
        record.failed_at = now
        log.warning("email %s not delivered: the account has no address", record.id)
        return record
    try:
        message = delivery.build_message(
            settings=settings, rendered=rendered, to=address, message_id=record.id, now=now
        )
    except (ValueError, TypeError) as exc:  # e.g. a line break in the address: no injection
        record.failed_at = now
        log.warning("email %s not delivered: %s", record.id, type(exc).__name__)
        return record
    delivery.enqueue(session, delivery.Pending(record, record.id, message, settings, now))
    return record


def send_later(
    *,
    session: Session,
    settings: Settings,
    account_id: uuid.UUID,
    template: str,
    now: datetime,
) -> None:
    """Send ``template`` to the account ``account_id`` once the caller's unit of work
    commits, from the delivery thread, in a unit of work of its own: nothing of the
    account is opened, recorded or sent in the caller's request.

    For the notices an anonymous caller can set off (``account_locked``): the answer
    then does the same work, and takes the same time, whether or not the address it
    was given has an account. Nothing is sent if the caller's work rolls back, or if
    the account is deleted by then. Templates with a link cannot be sent this way.
    """
    if template_for(template).link_path is not None:
        raise UnsafeLink(f"the {template!r} email needs its token link: use send()")
    engine = session.get_bind(mapper=OutboundEmail.__mapper__)
    factory = SessionFactory(engine.engine, vault_of(session), keys_of(session))
    delivery.after_commit(
        session, partial(_send_in_own_unit, factory, settings, account_id, template, now)
    )


def unsafe_queued(template: str) -> Select[OutboundEmail]:
    """The emails of ``template`` recorded but neither delivered nor failed, oldest
    first: the delivery queue of a worker (:func:`send_queued`). Unsafe, it skips the
    access policy: the worker is the platform writing to each account's own address,
    and shows nothing of what it opens."""
    return (
        select(OutboundEmail)
        .where(
            OutboundEmail.template == template,
            OutboundEmail.sent_at.is_(None),
            OutboundEmail.failed_at.is_(None),
        )
        .order_by(OutboundEmail.created_at, OutboundEmail.id)
    )


def send_queued(
    *,
    session: Session,
    settings: Settings,
    record: OutboundEmail,
    account: Account,
    now: datetime,
    links: dict[str, str] | None = None,
) -> None:
    """Deliver ``record``, an email recorded earlier and not sent (:func:`unsafe_queued`),
    to ``account``'s address with the code it was recorded with, once the caller's unit
    of work commits (as :func:`send` does). ``links`` as for :func:`send`; its link is
    made now, so a token in it lives from the sending on. A record that cannot be
    built (no address, no code, an unsafe address) is marked failed, never raised."""
    links = dict(links or {})
    link = links.pop("link", None)
    if links:
        raise UnsafeLink(f"emails take one link, named 'link'; got {sorted(links)}")
    code = record.verification_code
    address = account.email
    if not address or not code:
        record.failed_at = now
        log.warning("email %s not delivered: no address or no code", record.id)
        return
    if record.code_digest is None:  # recorded without it (a bulk import's invitations)
        record.code_digest = _digest(session, code)
    rendered = render(record.template, code=code, link=link, public_url=settings.public_url)
    try:
        message = delivery.build_message(
            settings=settings, rendered=rendered, to=address, message_id=record.id, now=now
        )
    except (ValueError, TypeError) as exc:
        record.failed_at = now
        log.warning("email %s not delivered: %s", record.id, type(exc).__name__)
        return
    delivery.enqueue(session, delivery.Pending(record, record.id, message, settings, now))


#: The platform itself, writing to an account's owner from the delivery thread.
PLATFORM = Actor(role="system")


def _send_in_own_unit(
    sessions: SessionFactory,
    settings: Settings,
    account_id: uuid.UUID,
    template: str,
    now: datetime,
) -> None:
    try:
        with sessions() as session, session.begin():
            # The platform opens the address to write to its owner, as
            # unsafe_patient_account does; it reads nothing else and shows nothing.
            attach(session, PLATFORM, check=_platform_reads)
            account = unsafe_account_to_notify(session=session, account_id=account_id)
            if account is None or account.status is AccountStatus.DELETED:
                return
            send(session=session, settings=settings, account=account, template=template, now=now)
    except Exception as exc:  # noqa: BLE001 - the caller has its answer: log, never raise
        log.warning("a %s email was not recorded: %s", template, type(exc).__name__)


def _platform_reads(_actor: Actor, _patient: uuid.UUID, _resource: str) -> None:
    """The read check of the delivery thread's units: the platform writing to an
    account's own address is no principal's read (the guard counts principals)."""


def unsafe_account_to_notify(*, session: Session, account_id: uuid.UUID) -> Account | None:
    """The account ``account_id``, to write to its owner: unsafe, it skips the access
    policy. For the platform's own notices about an account (locked, suspended,
    deleted), sent to that account's address and to no one else: the caller never sees
    the address, and what the message says is fixed text."""
    return session.get(Account, account_id)


def unsafe_patient_account(*, session: Session, patient_id: uuid.UUID) -> Account | None:
    """The active account of ``patient_id``, to write to: unsafe, it skips the access
    policy. The platform opens the address to deliver a message that says only that
    something waits in the app; whoever caused it (a practitioner's reply, a notice)
    never sees the address, and the caller must already read what the message is about.
    """
    return session.scalars(
        select(Account).where(
            Account.patient_id == patient_id, Account.status == AccountStatus.ACTIVE
        )
    ).first()


def _fresh_code(session: Session, account_id: uuid.UUID) -> str:
    """A code that no message a check can find already carries, so a code names one
    message: neither one of the recipient's :data:`CODE_WINDOW` latest (their own check)
    nor any recorded with a digest (the public check, one indexed lookup per draw).

    The recipient's latest codes are opened here anyway: those recorded before the
    public check existed (no digest, migration 0015) get theirs now, so that an account
    written to after the upgrade has its earlier messages found by the public check too.
    """
    emails = unsafe_emails_to(account_id)
    key = code_key(session)
    taken = set()
    for record, code in _codes_of(session, emails, account_id):
        normalised = normalise_code(code)
        taken.add(normalised)
        if record.code_digest is None and normalised is not None:
            record.code_digest = code_digest(key, normalised)
    while True:
        code = new_code()
        if normalise_code(code) in taken:
            continue
        digest = code_digest(key, normalise_code(code) or "")
        with session.no_autoflush:
            known = session.scalar(
                select(OutboundEmail.id).where(OutboundEmail.code_digest == digest).limit(1)
            )
        if known is None:
            return code


def _digest(session: Session, code: str) -> bytes:
    return code_digest(code_key(session), normalise_code(code) or "")


def unsafe_emails_to(account_id: uuid.UUID) -> Select[OutboundEmail]:
    """Every email sent to ``account_id``, whoever asks: unsafe, it skips the access
    policy. Only for sending, where the platform keeps a new code unlike the recipient's
    latest ones: the codes are compared here and never shown to the caller, who may be
    anyone that triggers an email (a practitioner's message, a sign-in, a reset)."""
    return select(OutboundEmail).where(OutboundEmail.account_id == account_id)


def _codes_of(
    session: Session, emails: Select[OutboundEmail], account_id: uuid.UUID
) -> list[tuple[OutboundEmail, str]]:
    """The :data:`CODE_WINDOW` latest of ``emails`` (a statement of the emails to
    ``account_id``) with their codes, unflushed ones to that account included."""
    latest = emails.order_by(OutboundEmail.created_at.desc(), OutboundEmail.id.desc()).limit(
        CODE_WINDOW
    )
    with session.no_autoflush:  # never flush the caller's work half-way
        records = list(session.scalars(latest))
    records += [
        r
        for r in session.new
        if isinstance(r, OutboundEmail) and r.account_id == account_id and r not in records
    ]
    return [(r, code) for r in records if (code := r.verification_code) is not None]


# -- reading, for the recipient ---------------------------------------------------------


def list_emails(
    *, session: Session, principal: Principal, limit: int, offset: int
) -> tuple[list[OutboundEmail], int]:
    """One page of the principal's messages, newest first, and how many there are."""
    readable = readable_emails(principal)
    total = session.scalar(select(func.count()).select_from(readable.subquery()))
    page = readable.order_by(OutboundEmail.created_at.desc(), OutboundEmail.id.desc())
    rows = list(session.scalars(page.limit(limit).offset(offset)))
    return rows, int(total or 0)


def verify_code(*, session: Session, principal: Principal, code: str) -> OutboundEmail | None:
    """The principal's message that carried ``code``, or None.

    Codes are sealed with random nonces, so there is no index to look one up: the codes
    of the principal's latest :data:`CODE_WINDOW` messages are opened and compared, each
    in constant time and all of them every time. Only the principal's own messages are
    searched: a code sent to someone else is not found, so the answer says nothing about
    other accounts.
    """
    typed = normalise_code(code)
    if typed is None:
        return None
    found: OutboundEmail | None = None
    emails = readable_emails(principal)
    for record, stored in _codes_of(session, emails, principal.account_id):
        candidate = normalise_code(stored) or ""
        if hmac.compare_digest(candidate.encode("ascii"), typed.encode("ascii")):
            found = record
    return found

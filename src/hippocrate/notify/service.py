"""Sending email. Every message carries no health data: only that something waits in
the app, and a short verification code the recipient can check there.

Delivery is SMTP when ``HIPPOCRATE_SMTP_HOST`` is set, else a file per message in the
outbox folder (the embedded default). Sending never fails the caller's unit of work: a
delivery failure is recorded on the message and logged.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from email.message import EmailMessage

from sqlalchemy.orm import Session

from hippocrate.config import Settings
from hippocrate.identity.models import Account
from hippocrate.notify.models import OutboundEmail
from hippocrate.notify.templates import render

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I


def new_code() -> str:
    """A short verification code, e.g. ``K7PX-3QHM`` (40 bits)."""
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(8))
    return f"{raw[:4]}-{raw[4:]}"


def send(
    *,
    session: Session,
    settings: Settings,
    account: Account,
    template: str,
    now: datetime,
    links: dict[str, str] | None = None,
) -> OutboundEmail:
    """Record and deliver one email of ``template`` to ``account``'s address.

    ``links`` are the only variable content (e.g. a verification link); templates take
    nothing else, so no caller can put health data in an email.
    """
    code = new_code()
    record = OutboundEmail(
        account_id=account.id, owner_id=account.owner_id, template=template, created_at=now
    )
    record.verification_code = code
    session.add(record)
    subject, body = render(template, code=code, links=links or {}, public_url=settings.public_url)
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = account.email or ""
    message["Subject"] = subject
    message.set_content(body)
    from hippocrate.notify.delivery import deliver

    if deliver(settings, message, record.id):
        record.sent_at = now
    else:
        record.failed_at = now
    return record

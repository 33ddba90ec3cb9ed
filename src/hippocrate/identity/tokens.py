"""Single-use tokens: email verification, password reset, staff account setup.

A token has 256 random bits and is shown once (in an email link, or to the
administrator who creates a staff account); only its SHA-256 digest is stored. It
is used at most once, before it expires, for the purpose it was made for. Issuing a
token of one purpose withdraws the account's earlier unused ones of that purpose.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hippocrate.identity.errors import InvalidLinkToken
from hippocrate.identity.models import AccountToken, TokenPurpose
from hippocrate.identity.sessions import TOKEN_BYTES, digest

VERIFY_EMAIL_LIFETIME = timedelta(hours=48)
RESET_PASSWORD_LIFETIME = timedelta(hours=1)
STAFF_SETUP_LIFETIME = timedelta(hours=72)
# An imported patient's invitation: long enough to be read after a holiday; past it,
# the patient asks for a reset link like anyone else.
INVITATION_LIFETIME = timedelta(days=30)
MIN_EMAIL_INTERVAL = timedelta(seconds=60)
"""At most one email of a purpose per account in this interval (no mail bombing)."""

MAX_TOKEN_LENGTH = 128


def issue(
    *,
    session: Session,
    account_id: uuid.UUID,
    purpose: TokenPurpose,
    lifetime: timedelta,
    now: datetime,
) -> tuple[str, AccountToken]:
    """A new token for ``account_id``; earlier unused ones of ``purpose`` are withdrawn."""
    withdraw(session=session, account_id=account_id, purpose=purpose, now=now)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    record = AccountToken(
        token_digest=digest(token),
        account_id=account_id,
        purpose=purpose,
        created_at=now,
        expires_at=now + lifetime,
    )
    session.add(record)
    session.flush()
    return token, record


def sent_recently(
    *, session: Session, account_id: uuid.UUID, purpose: TokenPurpose, now: datetime
) -> bool:
    """Whether a token of ``purpose`` was issued to the account within the interval."""
    found = session.scalars(
        select(AccountToken.id).where(
            AccountToken.account_id == account_id,
            AccountToken.purpose == purpose,
            AccountToken.created_at > now - MIN_EMAIL_INTERVAL,
        )
    ).first()
    return found is not None


def withdraw(
    *, session: Session, account_id: uuid.UUID, purpose: TokenPurpose, now: datetime
) -> None:
    session.execute(
        update(AccountToken)
        .where(
            AccountToken.account_id == account_id,
            AccountToken.purpose == purpose,
            AccountToken.used_at.is_(None),
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )


def find_usable(
    *, session: Session, token: str, purpose: TokenPurpose, now: datetime
) -> AccountToken:
    """The live token of ``purpose``; :class:`InvalidLinkToken` for anything else
    (unknown, used, expired, other purpose), never told apart."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise InvalidLinkToken()
    record = session.scalars(
        select(AccountToken).where(AccountToken.token_digest == digest(token)).with_for_update()
    ).first()
    if (
        record is None
        or record.purpose is not purpose
        or record.used_at is not None
        or now >= record.expires_at
    ):
        raise InvalidLinkToken()
    return record


def consume(record: AccountToken, now: datetime) -> None:
    record.used_at = now

"""Building and delivering a message: SMTP when configured, else the outbox folder.

A message is delivered only once the unit of work that recorded it commits: an email
whose record was rolled back would carry a code the app does not know, and the
recipient would be told a genuine message is a fake. Delivery then runs right after
the commit, in the same process, once the unit of work has given its database
connection back (a delivery never holds two of the pool's connections); its outcome
(``sent_at`` or ``failed_at``) is written in a short transaction of its own. It never
raises into the caller, and it logs the message id and the kind of failure, never an
address, a code or content.

A job given to :func:`after_commit` (a notice that an anonymous caller can set off,
such as ``account_locked``: ``notify.service.send_later``) runs, after the caller's
commit, on the process's one delivery thread instead: the request answers without
recording or sending anything, so the time of its answer does not depend on whether an
email went (:func:`drain` waits for those jobs).
"""

from __future__ import annotations

import functools
import logging
import os
import smtplib
import ssl
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, parseaddr
from urllib.parse import urlsplit

from sqlalchemy import Connection, Engine, event, update
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.base import instance_state

from hippocrate.config import Settings
from hippocrate.notify.models import OutboundEmail
from hippocrate.notify.templates import Rendered

log = logging.getLogger(__name__)

SMTP_TIMEOUT = 10.0  # seconds, per network operation
IMPLICIT_TLS_PORT = 465  # RFC 8314 submission over TLS from the first byte
_QUEUE = "hippocrate.notify.queue"
_COMMITTED = "hippocrate.notify.committed"
_JOBS = "hippocrate.notify.jobs"
_COMMITTED_JOBS = "hippocrate.notify.committed-jobs"


def build_message(
    *, settings: Settings, rendered: Rendered, to: str, message_id: uuid.UUID, now: datetime
) -> EmailMessage:
    """A multipart/alternative message (text, then HTML) with the headers that make a
    transactional email deliverable and recognisable."""
    message = EmailMessage(policy=SMTP_POLICY)
    message["From"] = settings.mail_from
    message["To"] = to
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(now)
    # The record's id: unique, says nothing, and ties a bounce back to its record.
    message["Message-ID"] = f"<{message_id}@{sending_domain(settings)}>"
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to this
    message["X-Auto-Response-Suppress"] = "All"  # the same, for Exchange and Outlook
    # Transactional: no List-Unsubscribe, no tracking headers, no Reply-To.
    message.set_content(rendered.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(rendered.html, subtype="html", charset="utf-8", cte="quoted-printable")
    # After the parts: setting content moves or drops the Content-* headers already set.
    message["Content-Language"] = "fr"
    return message


def sending_domain(settings: Settings) -> str:
    """The domain of ``mail_from`` (the one SPF, DKIM and DMARC are set up for), else
    the public URL's host."""
    address = parseaddr(settings.mail_from)[1]
    domain = address.rpartition("@")[2] if "@" in address else ""
    return domain or urlsplit(settings.public_url).hostname or "localhost"


# -- after the commit -------------------------------------------------------------------


@dataclass(frozen=True)
class Pending:
    record: OutboundEmail
    record_id: uuid.UUID
    message: EmailMessage
    settings: Settings
    now: datetime


def enqueue(session: Session, pending: Pending) -> None:
    """Deliver ``pending`` when ``session``'s transaction commits; drop it on rollback."""
    session.info.setdefault(_QUEUE, []).append(pending)


def after_commit(session: Session, job: Callable[[], None]) -> None:
    """Run ``job`` on the delivery thread once ``session``'s transaction commits and
    has given its connection back; drop it on rollback. ``job`` must not raise (what it
    raises is logged by kind and dropped)."""
    session.info.setdefault(_JOBS, []).append(job)


@event.listens_for(Session, "after_rollback")
def _drop(session: Session) -> None:
    session.info.pop(_QUEUE, None)
    session.info.pop(_JOBS, None)


@event.listens_for(Session, "after_commit")
def _deliver_committed(session: Session) -> None:
    # The session still holds its connection here: delivering, whose outcome takes a
    # connection of its own, waits until the transaction has given it back (under a
    # burst, requests each holding one connection and waiting for a second exhausted
    # the pool, and the outcomes were never recorded).
    session.info.setdefault(_COMMITTED, []).extend(session.info.pop(_QUEUE, []))
    session.info.setdefault(_COMMITTED_JOBS, []).extend(session.info.pop(_JOBS, []))


@event.listens_for(Session, "after_transaction_end")
def _deliver_released(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is not None:
        return  # a savepoint or a subtransaction: the connection is still held
    queue: list[Pending] = session.info.pop(_COMMITTED, [])
    for pending in queue:
        # A record added in a savepoint that was rolled back is no longer persistent.
        if not instance_state(pending.record).persistent:
            continue
        delivered = deliver(pending.settings, pending.message, pending.record_id)
        _record_outcome(session, pending, delivered)
    for job in session.info.pop(_COMMITTED_JOBS, []):
        _submit(job)


def _engine_of(session: Session) -> Engine | None:
    try:
        bind = session.get_bind(mapper=OutboundEmail.__mapper__)
    except Exception as exc:  # noqa: BLE001 - never fail the caller's committed work
        log.warning("no engine to record email outcomes: %s", type(exc).__name__)
        return None
    return bind.engine if isinstance(bind, Connection) else bind


def _record_outcome(session: Session, pending: Pending, delivered: bool) -> None:
    engine = _engine_of(session)
    if engine is None or not _write_outcome(engine, pending, delivered):
        return
    # Mirror it on the caller's object without making it dirty.
    column = "sent_at" if delivered else "failed_at"
    set_committed_value(pending.record, column, pending.now)


def _write_outcome(engine: Engine, pending: Pending, delivered: bool) -> bool:
    column = "sent_at" if delivered else "failed_at"
    try:
        with engine.begin() as connection:
            connection.execute(
                update(OutboundEmail)
                .where(OutboundEmail.id == pending.record_id)
                .values({column: pending.now})
            )
    except Exception as exc:  # noqa: BLE001 - the caller's work is committed: never fail it
        log.warning("email %s: outcome not recorded: %s", pending.record_id, type(exc).__name__)
        return False
    return True


# -- the delivery thread ----------------------------------------------------------------

_worker_lock = threading.Lock()
_worker: ThreadPoolExecutor | None = None
_in_flight: set[Future[None]] = set()


def _submit(job: Callable[[], None]) -> None:
    """Run ``job`` on the process's delivery thread (one: jobs run in the order they
    were committed, and a burst never takes more than one database connection)."""
    global _worker  # noqa: PLW0603 - one delivery thread per process, made on first use
    with _worker_lock:
        if _worker is None:
            _worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hippocrate-mail")
        future = _worker.submit(_run, job)
        _in_flight.add(future)
    future.add_done_callback(_forget)


def _forget(future: Future[None]) -> None:
    with _worker_lock:
        _in_flight.discard(future)


def _run(job: Callable[[], None]) -> None:
    try:
        job()
    except Exception as exc:  # noqa: BLE001 - a job's failure is logged, never spread
        log.warning("a delivery job failed: %s", type(exc).__name__)


def drain(timeout: float = 30.0) -> bool:
    """Wait until every job handed to the delivery thread has run (its emails recorded,
    delivered or failed, and their outcomes written); returns False if some are still
    going after ``timeout`` seconds. For tests, and for a process that shuts down."""
    with _worker_lock:
        futures = set(_in_flight)
    if not futures:
        return True
    _done, not_done = wait_for(futures, timeout=timeout)
    return not not_done


# -- transports -------------------------------------------------------------------------


def deliver(settings: Settings, message: EmailMessage, message_id: uuid.UUID) -> bool:
    """Send ``message`` now; returns False (and logs, without the content) on failure."""
    try:
        if settings.smtp_host:
            _smtp(settings, message)
        else:
            _outbox(settings, message, message_id)
    except (OSError, smtplib.SMTPException, UnsafeSmtpConfig) as exc:
        # The exception's text is not logged: SMTP refusals quote the recipient.
        log.warning("email %s not delivered: %s", message_id, type(exc).__name__)
        return False
    except Exception as exc:  # noqa: BLE001 - delivery must never fail the caller
        # No traceback: exception texts may quote the message.
        log.error(  # noqa: TRY400
            "email %s not delivered: unexpected %s", message_id, type(exc).__name__
        )
        return False
    log.info("email %s delivered", message_id)
    return True


class UnsafeSmtpConfig(Exception):
    """SMTP credentials are configured but the connection would not be encrypted."""


def _smtp(settings: Settings, message: EmailMessage) -> None:
    with _connected(settings) as smtp:
        smtp.send_message(message)


def deliver_many(
    settings: Settings,
    messages: list[tuple[EmailMessage, uuid.UUID]],
    on_delivered: Callable[[uuid.UUID], None] | None = None,
) -> list[bool]:
    """Send each of ``messages`` now, over one SMTP connection (a job's batch): whether
    each was accepted, ``on_delivered`` called with its id as soon as it is. A message
    the relay refuses does not stop the others; a broken connection fails the rest,
    which the caller tries again later. Logs as :func:`deliver` does."""
    outcomes: list[bool] = []
    if not settings.smtp_host:
        for message, message_id in messages:
            sent = deliver(settings, message, message_id)
            if sent and on_delivered is not None:
                on_delivered(message_id)
            outcomes.append(sent)
        return outcomes
    try:
        with _connected(settings) as smtp:
            for message, message_id in messages:
                try:
                    smtp.send_message(message)
                except (smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError):
                    log.warning("email %s not delivered: refused by the relay", message_id)
                    outcomes.append(False)
                    continue
                log.info("email %s delivered", message_id)
                outcomes.append(True)
                if on_delivered is not None:
                    on_delivered(message_id)
    except (OSError, smtplib.SMTPException, UnsafeSmtpConfig) as exc:
        log.warning("a batch of emails stopped: %s", type(exc).__name__)
    return outcomes + [False] * (len(messages) - len(outcomes))


@contextmanager
def _connected(settings: Settings) -> Iterator[smtplib.SMTP]:
    """An SMTP session to the relay, encrypted and logged in as the settings say."""
    assert settings.smtp_host
    implicit_tls = settings.smtp_port == IMPLICIT_TLS_PORT
    if settings.smtp_username and not (implicit_tls or settings.smtp_starttls):
        raise UnsafeSmtpConfig("refusing to send SMTP credentials without TLS")
    smtp: smtplib.SMTP
    if implicit_tls:
        smtp = smtplib.SMTP_SSL(
            settings.smtp_host, settings.smtp_port, timeout=SMTP_TIMEOUT, context=_tls()
        )
    else:
        smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=SMTP_TIMEOUT)
    with smtp:
        if settings.smtp_starttls and not implicit_tls:
            # Fails (SMTPNotSupportedError) if the server does not offer STARTTLS: no
            # silent fall back to clear text.
            smtp.starttls(context=_tls())
        if settings.smtp_username:
            password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
            smtp.login(settings.smtp_username, password)
        yield smtp


def _tls() -> ssl.SSLContext:
    """A context that verifies certificates and host names (smtplib's own default does
    not), made once per trust store: loading the system's certificates costs some
    17 ms, which every email paid when it was made per message."""
    return _tls_for(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


@functools.cache
def _tls_for(_cert_file: str | None, _cert_dir: str | None) -> ssl.SSLContext:
    return ssl.create_default_context()


def _outbox(settings: Settings, message: EmailMessage, message_id: uuid.UUID) -> None:
    """One ``<id>.eml`` file, 0600, in a 0700 folder: the embedded default."""
    outbox = settings.outbox_dir
    outbox.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(outbox, 0o700)  # mkdir's mode is masked by the umask, and skipped if it exists
    path = outbox / f"{message_id}.eml"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(bytes(message))

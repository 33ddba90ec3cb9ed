"""Delivery of a built message: SMTP when configured, else the outbox folder."""

from __future__ import annotations

import logging
import os
import smtplib
import uuid
from email.message import EmailMessage

from hippocrate.config import Settings

log = logging.getLogger(__name__)


def deliver(settings: Settings, message: EmailMessage, message_id: uuid.UUID) -> bool:
    """Send ``message``; returns False (and logs, without the content) on failure."""
    try:
        if settings.smtp_host:
            with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=10) as smtp:
                if settings.smtp_starttls:
                    smtp.starttls()
                if settings.smtp_username and settings.smtp_password:
                    smtp.login(settings.smtp_username, settings.smtp_password.get_secret_value())
                smtp.send_message(message)
        else:
            outbox = settings.outbox_dir
            outbox.mkdir(parents=True, exist_ok=True, mode=0o700)
            path = outbox / f"{message_id}.eml"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(bytes(message))
    except (OSError, smtplib.SMTPException) as exc:
        log.warning("email %s not delivered: %s", message_id, type(exc).__name__)
        return False
    return True

"""Witnesses: every checkpoint also goes somewhere the deployment cannot rewrite.

A mirror file protects against losing the checkpoint file; it does not protect against
whoever holds the data folder and the signing key, who can re-sign a rewritten history
in every file they reach. A witness is out of their reach: a webhook
(``HIPPOCRATE_AUDIT_WITNESS_WEBHOOK``, a POST of the checkpoint as one JSON line, the
same line the checkpoint file holds) and/or an email to the DPO
(``HIPPOCRATE_AUDIT_WITNESS_EMAIL``, the same line in the body; no personal data: a
sequence number, a hash, a time and a signature).

What the witness keeps, one received line per line, is a *witness copy*; ``audit verify
--witness FILE`` compares it with the trail. A checkpoint that a witness could not take
is kept in ``DATA_DIR/audit/witness-pending/<witness>.jsonl`` and retried at the next
checkpoint round, oldest first; sending never raises into the app. Guaranteed: no
checkpoint is dropped while fewer than ``PENDING_LIMIT`` wait for one witness (beyond
that the oldest go first: the newest head still commits to all history before it).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from hippocrate.audit.checkpoints import Checkpoint, read_checkpoints
from hippocrate.config import KeyProviderKind, Settings

log = logging.getLogger(__name__)

WEBHOOK_TIMEOUT = 5.0  # seconds
PENDING_LIMIT = 1000


class WitnessFailed(Exception):
    """The witness did not take the checkpoint; it stays pending."""


class Witness(Protocol):
    @property
    def name(self) -> str:
        """Names the witness in logs and its pending file."""

    def send(self, checkpoint: Checkpoint) -> None:
        """Deliver one checkpoint, or raise."""


@dataclass(frozen=True)
class WebhookWitness:
    """POSTs the checkpoint line as ``application/json``; any 2xx answer takes it."""

    url: str
    name: str = "webhook"

    def send(self, checkpoint: Checkpoint) -> None:
        request = urllib.request.Request(  # noqa: S310 - an operator-configured URL
            self.url,
            data=checkpoint.to_line().encode("ascii"),
            headers={"Content-Type": "application/json", "User-Agent": "hippocrate-audit"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT) as answer:  # noqa: S310
            if not 200 <= answer.status < 300:
                raise WitnessFailed(f"answered {answer.status}")


@dataclass(frozen=True)
class EmailWitness:
    """An email to the DPO, through the platform's outbound delivery, carrying the
    checkpoint line; nothing about any patient."""

    settings: Settings
    to: str
    name: str = "email"

    def send(self, checkpoint: Checkpoint) -> None:
        from hippocrate.notify.delivery import build_message, deliver
        from hippocrate.notify.templates import Rendered

        line = checkpoint.to_line()
        text = (
            f"Audit checkpoint at sequence {checkpoint.seq}, signed "
            f"{checkpoint.at.astimezone(UTC).isoformat(timespec='seconds')}.\n\n"
            "Keep the line below, unchanged, one line per checkpoint, in a file out of "
            "the platform's reach; 'hippocrate audit verify --witness FILE' compares it "
            "with the trail.\n\n"
            f"{line}\n"
        )
        html = (
            f"<p>Audit checkpoint at sequence {checkpoint.seq}.</p>"
            "<p>Keep the line below, unchanged, in a file out of the platform's reach; "
            "<code>hippocrate audit verify --witness FILE</code> compares it with the "
            f"trail.</p><pre>{line}</pre>"
        )
        message_id = uuid.uuid4()
        message = build_message(
            settings=self.settings,
            rendered=Rendered(f"Hippocrate audit checkpoint {checkpoint.seq}", text, html),
            to=self.to,
            message_id=message_id,
            now=datetime.now(UTC),
        )
        if not deliver(self.settings, message, message_id):
            raise WitnessFailed("the email was not delivered")


def configured(settings: Settings) -> list[Witness]:
    """The witnesses the settings name, webhook first."""
    witnesses: list[Witness] = []
    if settings.audit_witness_webhook:
        witnesses.append(WebhookWitness(settings.audit_witness_webhook))
    if settings.audit_witness_email:
        witnesses.append(EmailWitness(settings, settings.audit_witness_email))
    return witnesses


def pending_dir(settings: Settings) -> Path:
    return settings.data_dir / "audit" / "witness-pending"


@dataclass
class Delivery:
    """What one round of sending did, per witness name."""

    sent: dict[str, int] = field(default_factory=dict)
    pending: dict[str, int] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # name: kind of failure


def publish(
    settings: Settings, checkpoint: Checkpoint | None, *, witnesses: Sequence[Witness] | None = None
) -> Delivery:
    """Queue ``checkpoint`` (when given) for every witness, then send what is pending,
    oldest first. Never raises: a failure is logged and the checkpoint stays pending
    for the next round."""
    chosen = configured(settings) if witnesses is None else list(witnesses)
    delivery = Delivery()
    if not chosen:
        return delivery
    folder = pending_dir(settings)
    try:
        with _locked(folder):
            for witness in chosen:
                _send_pending(folder, witness, checkpoint, delivery)
    except OSError as exc:
        log.warning("audit witnesses: pending folder unusable: %s", type(exc).__name__)
        delivery.failures["pending"] = type(exc).__name__
    return delivery


def _send_pending(
    folder: Path, witness: Witness, checkpoint: Checkpoint | None, delivery: Delivery
) -> None:
    path = folder / f"{witness.name}.jsonl"
    try:
        queue = read_checkpoints(path)
    except ValueError:
        log.warning("audit witness %s: unreadable pending file set aside", witness.name)
        path.replace(path.with_suffix(f".unreadable-{int(datetime.now(UTC).timestamp())}"))
        queue = []
    if checkpoint is not None and checkpoint not in queue:
        queue.append(checkpoint)
        _rewrite(path, queue)  # on disk before the network: a crash loses nothing
    sent = 0
    for item in queue:
        try:
            witness.send(item)
        except Exception as exc:  # noqa: BLE001 - a witness never fails the app; retried
            log.warning(
                "audit witness %s: checkpoint %d not taken (%s); kept pending",
                witness.name,
                item.seq,
                type(exc).__name__,
            )
            delivery.failures[witness.name] = type(exc).__name__
            break
        sent += 1
    remaining = queue[sent:][-PENDING_LIMIT:]
    if sent or len(remaining) != len(queue):
        _rewrite(path, remaining)
    delivery.sent[witness.name] = sent
    delivery.pending[witness.name] = len(remaining)


def _rewrite(path: Path, checkpoints: Sequence[Checkpoint]) -> None:
    """Replace the file atomically (write aside, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not checkpoints:
        path.unlink(missing_ok=True)
        return
    aside = path.with_suffix(".tmp")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, "".join(c.to_line() + "\n" for c in checkpoints).encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    aside.replace(path)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One process at a time sends (processes of one deployment share the folder)."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(folder / ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def limits(settings: Settings, witness_files: Sequence[Path]) -> list[str]:
    """What ``audit verify`` cannot prove with this configuration."""
    notes = []
    if not configured(settings):
        notes.append(
            "no witness configured: a rewrite by someone holding the data folder and the "
            "signing key is not excluded"
        )
    elif not witness_files:
        notes.append(
            "no witness copy given (--witness FILE): the witnessed heads were not compared"
        )
    if settings.audit_witness_email and not settings.smtp_host:
        notes.append(
            "the email witness writes to the outbox on this machine (no SMTP host): "
            "it is no witness out of reach"
        )
    data = settings.data_dir.resolve()
    if settings.audit_checkpoint_mirror and _inside(settings.audit_checkpoint_mirror, data):
        notes.append("the mirror is inside the data folder: whoever copies it has both")
    key_file = settings.audit_signing_key_file or (
        settings.resolved_key_file if settings.key_provider == KeyProviderKind.FILE else None
    )
    if key_file is not None and _inside(key_file, data):
        notes.append(
            "the signing key file is inside the data folder: whoever copies that folder "
            "can re-sign history (set HIPPOCRATE_AUDIT_SIGNING_KEY_FILE outside it, or use "
            "the HSM)"
        )
    return notes


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder)

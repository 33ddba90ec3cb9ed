"""The guard's rules, and containment.

Rules run on every access *before* the data is decrypted (the store's access hook calls
them through the audit recorder, once per patient per unit of work):

- honeytoken: any read of a honeytoken patient contains at once;
- breadth: more distinct patients in the sliding window than the role's threshold;
- enumeration: more refused or not-found object ids than the threshold.

Containment marks the principal in the shared state (every app process refuses it from
that moment), then, once the offending unit of work is rolled back, locks the account,
ends its sessions, writes a security event and sends the alerts.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hippocrate.audit.recorder import Actor
from hippocrate.audit.service import PendingEvent, append
from hippocrate.breach import notices
from hippocrate.breach.notices import NOTICE_JOB_ID, NOTICE_ROLE
from hippocrate.breach.service import incident_for_containment
from hippocrate.config import Settings
from hippocrate.db.engine import SessionFactory
from hippocrate.guard.errors import Contained, NotContained
from hippocrate.guard.models import HoneytokenMarker
from hippocrate.guard.state import DatabaseState, GuardState, RedisState, clock
from hippocrate.identity.models import Account, AccountStatus
from hippocrate.identity.sessions import end_sessions_of
from hippocrate.ops import metrics
from hippocrate.tags import Outcome, Purpose, Tag
from hippocrate.vault import Vault
from hippocrate.vault.providers.base import KeyProvider

security_log = logging.getLogger("hippocrate.security")
HONEYTOKEN_PURPOSE = b"hippocrate.honeytoken.v1"


SUSPENDED_TEMPLATE = "account_suspended"
"""The email the owner of a contained account receives."""


def open_state(settings: Settings, sessions: SessionFactory) -> GuardState:
    """Redis when ``HIPPOCRATE_REDIS_URL`` is set, else the database: either way every
    process of the deployment (workers, the CLI) shares the same state."""
    if not settings.redis_url:
        return DatabaseState(sessions)
    return RedisState(settings.redis_url, prefix=redis_prefix(sessions.vault.provider))


def redis_prefix(provider: KeyProvider) -> str:
    """The deployment's Redis keys are named after a digest its key provider derives, so
    that two deployments sharing one Redis never mix their counters or containments."""
    deployment = provider.derive_index_key(b"hippocrate.guard.redis-prefix.v1")
    return f"hippocrate:{deployment.hex()[:16]}:guard:"


class Guard:
    def __init__(
        self,
        settings: Settings,
        vault: Vault,
        state: GuardState,
        *,
        now: Callable[[], float] = clock,
    ) -> None:
        self.settings = settings
        self.state = state
        self._now = now
        self._honey_key = vault.provider.derive_index_key(HONEYTOKEN_PURPOSE)

    # -- honeytokens -------------------------------------------------------------------

    def marker(self, patient: uuid.UUID) -> bytes:
        return hmac.new(self._honey_key, patient.bytes, hashlib.sha256).digest()

    def is_honeytoken(self, session: Session, patient: uuid.UUID) -> bool:
        with session.no_autoflush:
            return session.get(HoneytokenMarker, self.marker(patient)) is not None

    # -- rules -------------------------------------------------------------------------

    def breadth_limit(self, role: str) -> int | None:
        return {
            "practitioner": self.settings.guard_breadth_practitioner,
            "admin": self.settings.guard_breadth_admin,
            "patient": self.settings.guard_breadth_patient,
            "operator": self.settings.guard_breadth_operator,
            "support": 0,
            "dpo": 0,
        }.get(role)

    def daily_limit(self, role: str) -> int | None:
        """A longer window, so that a thief pacing under the hourly limit is stopped."""
        return {
            "practitioner": self.settings.guard_daily_practitioner,
            "admin": self.settings.guard_daily_admin,
            "operator": self.settings.guard_daily_operator,
        }.get(role)

    def ensure_not_contained(self, account: uuid.UUID, *, session: Session | None = None) -> None:
        reason = self.state.contained(account, session=session)
        if reason is not None:
            raise Contained(reason)

    def check_read(self, session: Session, actor: Actor, patient: uuid.UUID) -> None:
        """Called before ``actor`` reads ``patient``'s data; raises ``Contained``."""
        if actor.purpose is Purpose.NOTICE or actor.role == NOTICE_ROLE:
            self._check_notice(session, actor, patient)
            return
        if actor.account_id is None:
            if self.is_honeytoken(session, patient):
                self._log("honeytoken read without an account", actor, patient)
            return
        rules = [
            (scope, seconds, limit, label)
            for scope, seconds, limit, label in (
                (
                    "reads",
                    self.settings.guard_window_seconds,
                    self.breadth_limit(actor.role),
                    f"{self.settings.guard_window_seconds:g} s",
                ),
                ("reads-day", 86_400.0, self.daily_limit(actor.role), "a day"),
            )
            if limit is not None
        ]
        # One question to the state store: contained already? and the counts.
        reason, counts = self.state.observe(
            actor.account_id,
            patient,
            now=self._now(),
            windows=[(scope, seconds) for scope, seconds, _, _ in rules],
            session=session,
        )
        if reason is not None:
            metrics.guard("refused", reason)
            raise Contained(reason)
        if self.is_honeytoken(session, patient):
            self._trip(actor, "honeytoken", patient, session=session)
        tripped = [
            (seconds, f"breadth: {count} patients in {label}")
            for (_, seconds, limit, label), count in zip(rules, counts, strict=True)
            if limit is not None and count > limit
        ]
        if tripped:
            longest, reason = max(seconds for seconds, _ in tripped), tripped[0][1]
            # The refused read was new in the longest window it tripped, so new in every
            # shorter one: take it back there, so a release starts from what was read.
            self.state.forget(
                actor.account_id,
                patient,
                scopes=[scope for scope, seconds, _, _ in rules if seconds <= longest],
                session=session,
            )
            self._trip(actor, reason, session=session)
        metrics.guard("allowed")

    def _check_notice(self, session: Session, actor: Actor, patient: uuid.UUID) -> None:
        """The notice job's own rule, instead of the breadth limits: it may read a
        patient only while that patient's notice is claimed for sending (or set for a
        letter), and no other principal may read for the purpose ``notice``."""
        genuine = (
            actor.role == NOTICE_ROLE
            and actor.purpose is Purpose.NOTICE
            and actor.account_id == NOTICE_JOB_ID
        )
        if not genuine:
            if actor.account_id is None:
                raise Contained("notice: the purpose is the notice job's alone")
            self._trip(actor, "notice: the purpose is the notice job's alone", session=session)
        assert actor.account_id is not None
        self.ensure_not_contained(actor.account_id, session=session)
        if self.is_honeytoken(session, patient):
            self._trip(actor, "honeytoken", patient, session=session)
        if not notices.allowed_read(session, patient):
            self._trip(actor, "notice: a patient whose notice is not being sent", session=session)

    def note_refusal(self, actor: Actor) -> None:
        """Called after a refused or not-found access; raises ``Contained`` past the
        enumeration threshold."""
        if actor.account_id is None:
            return
        count = self.state.refusals(
            actor.account_id, now=self._now(), window=self.settings.guard_window_seconds
        )
        if count > self.settings.guard_enumeration_limit:
            self._trip(actor, f"enumeration: {count} refused ids")

    def _trip(
        self,
        actor: Actor,
        reason: str,
        patient: uuid.UUID | None = None,
        *,
        session: Session | None = None,
    ) -> None:
        assert actor.account_id is not None
        new = self.state.contain(actor.account_id, reason, session=session)
        metrics.guard("contained", reason, new=new)
        if new:
            self._log(f"containment: {reason}", actor, patient)
        # Without a session the state arbitrated already (the database inserts or does
        # nothing): ``new`` is that arbitration, and completing must not ask again.
        raise Contained(reason, new=new, settled=session is None)

    def _log(self, what: str, actor: Actor, patient: uuid.UUID | None) -> None:
        security_log.warning(
            json.dumps(
                {
                    "event": "guard",
                    "what": what,
                    "account": str(actor.account_id) if actor.account_id else None,
                    "role": actor.role,
                    "patient": str(patient) if patient else None,
                    "request": actor.request_id,
                    "at": datetime.now(UTC).isoformat(),
                }
            )
        )

    # -- containment, after the offending unit of work rolled back ---------------------

    def complete_containment(self, sessions: SessionFactory, actor: Actor, exc: Contained) -> None:
        """Lock the account, end its sessions, record the security event, alert."""
        if actor.account_id is None or not exc.new:
            return
        # Now for every process; two processes that contained at once: one completes.
        if not exc.settled and not self.state.settle(actor.account_id, exc.reason):
            return
        now = datetime.now(UTC)
        with sessions() as session, session.begin():
            # Plaintext columns only: containing opens nothing of the account.
            session.execute(
                update(Account)
                .where(Account.id == actor.account_id)
                .values(status=AccountStatus.DISABLED, disabled_reason="contained")
            )
            ended = end_sessions_of(
                session=session, account_id=actor.account_id, now=now, reason="contained"
            )
            append(
                session,
                [
                    PendingEvent(
                        action=Tag.GUARD_PRINCIPAL_CONTAINED,
                        actor_role=actor.role,
                        outcome=Outcome.CONTAINED,
                        at=now,
                        actor_account_id=actor.account_id,
                        resources=(f"reason:{exc.reason.split(':')[0]}", f"sessions:{ended}"),
                        request_id=actor.request_id,
                    )
                ],
            )
            # The incident opens (or grows) with the containment, in its unit of work:
            # no containment stands without an incident for the DPO.
            incident_for_containment(
                session=session,
                actor=Actor(role="guard"),
                principal=actor.account_id,
                kind="operator" if actor.role == "operator" else "account",
                reason=exc.reason,
                # The guard's own clock: the time its rules saw the breach.
                now=datetime.fromtimestamp(self._now(), UTC),
            )
        self.tell_owner(sessions, actor, now)
        self.alert(actor, exc.reason, now)

    def tell_owner(self, sessions: SessionFactory, actor: Actor, now: datetime) -> None:
        """Email the contained account's owner that it is suspended (``account_suspended``:
        a fixed text, not the reason). In a unit of its own, acting as the platform, after
        the containment committed; a CLI operator has no account and no address: nothing
        is sent. A failure is logged, never raised (the containment stands)."""
        from hippocrate.audit.recorder import attach
        from hippocrate.notify.service import send, unsafe_account_to_notify

        if actor.account_id is None:
            return
        platform = Actor(role="system", request_id=actor.request_id)
        try:
            with sessions() as session, session.begin():
                attach(
                    session,
                    platform,
                    check=lambda who, patient, _: self.check_read(session, who, patient),
                )
                account = unsafe_account_to_notify(session=session, account_id=actor.account_id)
                if account is None:
                    return
                send(
                    session=session,
                    settings=self.settings,
                    account=account,
                    template=SUSPENDED_TEMPLATE,
                    now=now,
                )
        except Exception as error:  # noqa: BLE001 - the containment is done: never undo it
            security_log.warning("containment notice not sent: %s", type(error).__name__)

    def alert(self, actor: Actor, reason: str, now: datetime) -> None:
        """Webhook and email, when configured; failures are logged, never raised."""
        payload = {
            "event": "hippocrate.containment",
            "account": str(actor.account_id),
            "role": actor.role,
            "reason": reason,
            "at": now.isoformat(),
        }
        if self.settings.guard_alert_webhook:
            request = urllib.request.Request(  # noqa: S310 - an operator-configured URL
                self.settings.guard_alert_webhook,
                data=json.dumps(payload).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            try:
                with urllib.request.urlopen(request, timeout=3):  # noqa: S310
                    pass
            except OSError as error:
                security_log.warning("alert webhook failed: %s", type(error).__name__)
        if self.settings.guard_alert_email:
            from email.message import EmailMessage

            from hippocrate.notify.delivery import deliver

            message = EmailMessage()
            message["From"] = self.settings.mail_from
            message["To"] = self.settings.guard_alert_email
            message["Subject"] = "Hippocrate: account contained"
            message.set_content(json.dumps(payload, indent=2))
            deliver(self.settings, message, uuid.uuid4())

    def ensure_releasable(self, session: Session, account_id: uuid.UUID) -> None:
        """``LookupError`` if there is no such account nor contained operator,
        ``NotContained`` if the guard did not contain it."""
        # Plaintext columns only: asking opens nothing of the account.
        reason = session.scalar(select(Account.disabled_reason).where(Account.id == account_id))
        exists = session.scalar(select(Account.id).where(Account.id == account_id)) is not None
        held = self.state.contained(account_id, session=session) is not None
        if not exists and not held:
            raise LookupError("no such account")
        if reason != "contained" and not held:
            raise NotContained()

    def release(
        self, session: Session, *, admin: Actor, account_id: uuid.UUID, reason: str
    ) -> None:
        """Release a contained principal, with a reason, in the caller's unit of work
        (recorded in the trail): what an approved four-eyes request does, or an
        operator at the command line. ``LookupError`` if there is no such account nor
        contained operator, ``NotContained`` if the guard did not contain it.

        The principal's breadth windows and refusals are kept: it starts again from
        the counts it had, so a release buys no fresh budget (docs/GUARD.md,
        "Administrators")."""
        self.ensure_releasable(session, account_id)
        # Plaintext columns only: releasing opens nothing of the account.
        session.execute(
            update(Account)
            .where(
                Account.id == account_id,
                Account.status == AccountStatus.DISABLED,
                Account.disabled_reason == "contained",
            )
            .values(status=AccountStatus.ACTIVE, disabled_reason=None)
        )
        append(
            session,
            [
                PendingEvent(
                    action=Tag.GUARD_PRINCIPAL_RELEASED,
                    actor_role=admin.role,
                    outcome=Outcome.ALLOWED,
                    at=datetime.now(UTC),
                    actor_account_id=admin.account_id,
                    resources=(f"account:{account_id}",),
                    purpose=Purpose.RELEASE,
                    request_id=admin.request_id,
                )
            ],
        )
        self.state.release(account_id, session=session)
        security_log.warning(
            json.dumps({"event": "guard", "what": "released", "account": str(account_id),
                        "by": str(admin.account_id), "reason": reason[:500]})
        )  # fmt: skip

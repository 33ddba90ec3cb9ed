"""Settings, read from the environment (prefix ``HIPPOCRATE_``).

Configuration fails closed: the only defaults are the embedded ones (a SQLite file and
a local key file under ``./var/``); a missing key file or HSM is an error at start.
"""

from __future__ import annotations

import os
import re
from enum import StrEnum
from functools import cached_property
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any, Literal

from pydantic import EmailStr, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_DOMAIN_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


class KeyProviderKind(StrEnum):
    FILE = "file"
    PKCS11 = "pkcs11"


class ProxyHeader(StrEnum):
    X_FORWARDED_FOR = "x-forwarded-for"
    FORWARDED = "forwarded"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HIPPOCRATE_", extra="ignore", frozen=True)

    data_dir: Path = Path("var")
    database_url: str | None = None
    key_provider: KeyProviderKind = KeyProviderKind.FILE
    key_file: Path | None = None

    pkcs11_module: Path | None = None
    pkcs11_token: str | None = None
    pkcs11_pin: SecretStr | None = None

    # Unwrapped data keys kept in memory: how many, and for how long (seconds).
    key_cache_size: int = Field(default=1024, ge=0, le=1_000_000)
    key_cache_ttl: float = Field(default=60.0, ge=0, le=3600)

    # Care relationship: how long a practitioner keeps access after a consultation ends.
    care_period_days: int = Field(default=30, ge=0, le=3650)

    # Sessions (seconds): idle and absolute lifetimes, shorter for staff.
    session_idle_patient: int = Field(default=30 * 60, ge=60)
    session_absolute_patient: int = Field(default=12 * 3600, ge=300)
    session_idle_staff: int = Field(default=15 * 60, ge=60)
    session_absolute_staff: int = Field(default=8 * 3600, ge=300)

    # Sign-in throttling: failures allowed per window, and how long a lock lasts.
    login_failures_per_account: int = Field(default=5, ge=1)
    login_failures_per_client: int = Field(default=20, ge=1)
    login_window_seconds: int = Field(default=15 * 60, ge=1)
    login_lock_seconds: int = Field(default=15 * 60, ge=1)
    # Wrong second-factor codes in a row (TOTP or recovery) before the account locks
    # until an administrator lifts it; a correct password does not reset this count.
    mfa_failures_per_account: int = Field(default=5, ge=1)

    # Proxies whose forwarded header is believed (addresses or CIDR networks, comma-
    # separated); none by default: the client is the socket's peer.
    trusted_proxies: str = ""
    # The one header those proxies set ("x-forwarded-for" or "forwarded"); the other
    # is ignored, since a client could forge the one the proxy does not overwrite.
    proxy_header: ProxyHeader = ProxyHeader.X_FORWARDED_FOR

    # Load: request bodies (bytes) other than attachment uploads, refused past this with
    # 413 before they are parsed; the largest legitimate one is a report at its maximum
    # length with every character JSON-escaped (about 420 KiB).
    max_body_bytes: int = Field(default=512 * 1024, ge=1024)
    # Password hashes (argon2id, 64 MiB each) computed at once in one process (default:
    # the number of CPUs), and how long a request waits for a turn before 503.
    hashing_concurrency: int | None = Field(default=None, ge=1, le=256)
    hashing_wait_seconds: float = Field(default=2.0, ge=0, le=60)
    # Anonymous registrations and password-reset requests per window, from one client
    # address and from everyone (429 past either, whatever the email address).
    anonymous_window_seconds: int = Field(default=15 * 60, ge=1)
    registrations_per_client: int = Field(default=10, ge=1)
    registrations_global: int = Field(default=300, ge=1)
    resets_per_client: int = Field(default=20, ge=1)  # asking and completing count alike
    resets_global: int = Field(default=300, ge=1)

    # Attachments.
    attachment_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    attachments_per_message: int = Field(default=5, ge=1, le=50)

    # Outbound email: SMTP when a host is set, else files in the outbox folder (for
    # development only: they hold live links), outside the data folder; default: a
    # folder beside it, named after it (``var`` -> ``var-outbox``).
    outbox_dir: Path = Path("var-outbox")
    public_url: str = "http://127.0.0.1:8000"
    mail_from: str = "Hippocrate <no-reply@hippocrate.invalid>"
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None

    # The guard: shared state in Redis when set, else in the database (both shared by
    # every process of the deployment).
    redis_url: str | None = None
    guard_window_seconds: float = Field(default=3600, gt=0)
    guard_breadth_practitioner: int = Field(default=20, ge=1)
    guard_breadth_admin: int = Field(default=5, ge=1)
    guard_breadth_patient: int = Field(default=1, ge=1)
    # A CLI operator reads patients one by one, each with a stated reason.
    guard_breadth_operator: int = Field(default=5, ge=1)
    # Distinct patients per 24 hours: a thief pacing under the hourly limit is stopped.
    guard_daily_practitioner: int = Field(default=40, ge=1)
    guard_daily_admin: int = Field(default=10, ge=1)
    guard_daily_operator: int = Field(default=10, ge=1)
    guard_enumeration_limit: int = Field(default=10, ge=1)
    guard_alert_webhook: str | None = None
    guard_alert_email: str | None = None
    # Honeytokens' email addresses are at this domain, which the operator monitors: mail
    # arriving there from anyone but this platform means identities left it (GUARD.md,
    # "Canary contacts"). Required once SMTP delivers mail; unset without SMTP (the
    # embedded default, the demo), honeytokens use the demo patients' reserved domain.
    canary_domain: str | None = None
    # Distinct patient keys the vault may unwrap per minute in one process, for
    # authenticated principals (and the CLI, jobs) ...
    key_unwrap_budget: int = Field(default=600, ge=1)
    # ... for anonymous requests (sign-in, completing a password reset), on their own
    # so that they never spend what authenticated reads need ...
    key_unwrap_budget_anonymous: int = Field(default=300, ge=1)
    # ... and for the delivery of password-reset links, done after the answer is sent.
    key_unwrap_budget_recovery: int = Field(default=60, ge=1)

    # Audit checkpoints: an append-only file outside the database, and an optional mirror.
    audit_checkpoint_file: Path | None = None
    # The app signs a checkpoint this often (seconds) when the chain moved; 0: never
    # (then run 'hippocrate audit checkpoint' from cron).
    audit_checkpoint_seconds: float = Field(default=60, ge=0)
    audit_checkpoint_mirror: Path | None = None
    # The chainer: requests commit their events unchained and the app's chainer links
    # them, woken at each commit and at least this often (seconds); 0: no chainer in
    # the app, every unit of work chains what is pending right after its commit.
    audit_chain_seconds: float = Field(default=0.5, ge=0)
    # Operations: the Prometheus metrics listener (host:port, a listener of its own that
    # only the operator reaches; unset: no metrics), and the log format ('json', one
    # object per line; 'console', readable lines; 'auto': console in a terminal).
    metrics_listen: str | None = None
    log_format: Literal["auto", "json", "console"] = "auto"
    # The key file provider's Ed25519 checkpoint signing key in a file of its own (0600),
    # so that it can live outside DATA_DIR; unset: inside the root key file.
    audit_signing_key_file: Path | None = None
    # 'audit verify' fails when an event older than audit_checkpoint_seconds plus this
    # grace (seconds) lies beyond the last checkpoint (with the cron mode, 0 above, the
    # grace alone is the bound: set it above the cron period).
    audit_checkpoint_grace_seconds: float = Field(default=300, ge=0)
    # Witnesses of every checkpoint, out of the deployment's reach: a webhook that is
    # POSTed each checkpoint as one JSON line, and/or the DPO's email address.
    audit_witness_webhook: str | None = None
    audit_witness_email: str | None = None

    # Issued documents (reports, prescriptions): the file of the key that signs them
    # with the file key provider (0600, made by 'hippocrate init'; unset:
    # DATA_DIR/document-signing.key; refused with pkcs11, whose token holds it), the
    # TrueType font they are printed in (unset: the DejaVu Sans shipped with Hippocrate),
    # and how many checks of a document the public route admits per window
    # (ANONYMOUS_WINDOW_SECONDS) from one address and from everyone.
    document_signing_key_file: Path | None = None
    document_font: Path | None = None
    document_checks_per_client: int = Field(default=60, ge=1)
    document_checks_global: int = Field(default=3000, ge=1)
    # How many checks of a received message (POST /messages/check) the public route
    # admits per window (ANONYMOUS_WINDOW_SECONDS) from one address and from everyone.
    message_checks_per_client: int = Field(default=30, ge=1)
    message_checks_global: int = Field(default=2000, ge=1)

    # Breach response: the hours from awareness to the Art. 33 deadline (the GDPR's 72;
    # the Digital Omnibus proposal would make it 96), and the lowest ENISA bands that
    # call for the authority and for the people (docs/BREACH.md explains the defaults).
    breach_deadline_hours: int = Field(default=72, ge=1, le=24 * 30)
    breach_authority_from: Literal["low", "medium", "high", "very high"] = "medium"
    breach_people_from: Literal["low", "medium", "high", "very high"] = "high"
    # How long a notice worker holds a notice it claimed before another may take it
    # again (it died): longer than one SMTP delivery takes.
    breach_notice_lease_seconds: float = Field(default=120, ge=1, le=3600)
    # The DPO's address printed in every patient's notice: the deployment's, set by its
    # operator, never text from the register (docs/BREACH.md, "What a notice says").
    dpo_email: EmailStr | None = None

    @field_validator("database_url")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            return None
        return value

    @field_validator("canary_domain")
    @classmethod
    def _domain(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        domain = value.strip().lower().rstrip(".")
        labels = domain.split(".")
        if len(labels) < 2 or not all(_DOMAIN_LABEL.fullmatch(label) for label in labels):
            raise ValueError(f"not a domain name: {value!r}")
        return domain

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        _parse_networks(value)  # fails at start, not at the first request
        return value

    @cached_property
    def trusted_proxy_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        return _parse_networks(self.trusted_proxies)

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'hippocrate.db').resolve()}"

    @cached_property
    def resolved_key_file(self) -> Path:
        return self.key_file if self.key_file is not None else self.data_dir / "root.key"

    @cached_property
    def resolved_document_signing_key_file(self) -> Path:
        chosen = self.document_signing_key_file
        return chosen if chosen is not None else self.data_dir / "document-signing.key"

    @cached_property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @cached_property
    def checkpoint_files(self) -> list[Path]:
        primary = self.audit_checkpoint_file or self.data_dir / "audit" / "checkpoints.jsonl"
        return [primary, *([self.audit_checkpoint_mirror] if self.audit_checkpoint_mirror else [])]

    @cached_property
    def hashing_slots(self) -> int:
        return self.hashing_concurrency or os.cpu_count() or 1

    @model_validator(mode="before")
    @classmethod
    def _outbox_beside_data(cls, data: Any) -> Any:
        """The outbox defaults to a folder beside the data folder, never inside it: a
        copy of the data folder must not carry live links."""
        if isinstance(data, dict) and not data.get("outbox_dir"):
            data_dir = Path(data.get("data_dir") or "var")
            if not data_dir.name:
                data_dir = data_dir.resolve()
            data = {**data, "outbox_dir": data_dir.parent / f"{data_dir.name}-outbox"}
        return data

    @model_validator(mode="after")
    def _outbox_outside_data(self) -> Settings:
        data, outbox = self.data_dir.resolve(), self.outbox_dir.resolve()
        if outbox == data or outbox.is_relative_to(data):
            raise ValueError("the outbox folder must be outside the data folder")
        return self


def _parse_networks(value: str) -> tuple[IPv4Network | IPv6Network, ...]:
    """``"10.0.0.1, 192.168.0.0/24"`` as networks; an entry that is neither an address
    nor a network is an error (a typo must not silently trust nobody, or everybody)."""
    networks = []
    for item in value.split(","):
        if item := item.strip():
            try:
                networks.append(ip_network(item, strict=False))
            except ValueError:
                raise ValueError(f"not an address or a network: {item!r}") from None
    return tuple(networks)


def get_settings() -> Settings:
    return Settings()

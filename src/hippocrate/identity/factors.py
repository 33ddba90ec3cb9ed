"""Second factor: TOTP (RFC 6238) and single-use recovery codes.

Guarantees:

- a TOTP code is accepted for the current 30-second step or one step either side
  (clock drift), and only for a step later than the last one accepted for the
  account (``Account.totp_last_step``): a code cannot be replayed, even within its
  own step, and an older code cannot follow a newer one;
- a recovery code (80 random bits) works once: only SHA-256 digests of the unused
  codes are kept, sealed, and a used one is removed;
- codes are compared in constant time;
- codes are parsed strictly: a TOTP code is exactly six ASCII digits, a recovery code
  sixteen characters of its base32 alphabet (ASCII letters A-Z, digits 2-7, any case,
  dashes and spaces ignored). Anything else (Arabic-Indic or full-width digits, any
  other non-ASCII character) is simply a wrong code: refused and counted by the caller,
  never an error.

Not guaranteed here: throttling of wrong codes (the sign-in code counts them).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from datetime import datetime
from typing import Literal

import pyotp

from hippocrate.identity.models import Account

ISSUER = "Hippocrate"
STEP_SECONDS = 30
DIGITS = 6
DRIFT_STEPS = 1
RECOVERY_CODE_COUNT = 10
RECOVERY_CODE_BYTES = 10  # 80 bits, 16 base32 characters
MAX_CODE_LENGTH = 64
_TOTP_CODE = re.compile(rf"[0-9]{{{DIGITS}}}")
_RECOVERY_CODE = re.compile(r"[A-Z2-7]{16}")


def new_secret() -> str:
    """A new TOTP secret: 160 random bits in base32 (RFC 4226's recommended length)."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, label: str) -> str:
    """The ``otpauth://`` URI an authenticator app reads (usually from a QR code)."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=label, issuer_name=ISSUER
    )


def step_at(now: datetime) -> int:
    return int(now.timestamp()) // STEP_SECONDS


def totp_step(secret: str, code: str, *, now: datetime, last_step: int | None) -> int | None:
    """The step whose code ``code`` is, if it is within the drift window and later than
    ``last_step``; else None."""
    if not is_totp_code(code):
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    current = step_at(now)
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if last_step is not None and step <= last_step:
            continue
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def is_totp_code(code: str) -> bool:
    """Whether ``code`` is six ASCII digits (``str.isdigit`` also accepts ``١٢٣٤٥٦``)."""
    return _TOTP_CODE.fullmatch(code) is not None


def normalise_recovery_code(code: str) -> str:
    return code.replace("-", "").replace(" ", "").upper()


def is_recovery_code(code: str) -> bool:
    """Whether ``code`` (normalised) is written in the recovery codes' alphabet only;
    checked before ``upper()`` can turn a non-ASCII letter into an ASCII one."""
    return code.isascii() and _RECOVERY_CODE.fullmatch(normalise_recovery_code(code)) is not None


def recovery_digest(code: str) -> str:
    return hashlib.sha256(normalise_recovery_code(code).encode("ascii", "replace")).hexdigest()


def new_recovery_codes() -> tuple[list[str], list[str]]:
    """Fresh recovery codes, as shown once (``ABCD-EFGH-IJKL-MNOP``) and as stored."""
    shown = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = base64.b32encode(secrets.token_bytes(RECOVERY_CODE_BYTES)).decode("ascii")
        shown.append("-".join(raw[i : i + 4] for i in range(0, len(raw), 4)))
    return shown, [recovery_digest(code) for code in shown]


def _use_recovery_code(account: Account, code: str) -> bool:
    stored = list(account.recovery_codes or [])
    wanted = recovery_digest(code)
    found = None
    for candidate in stored:
        if hmac.compare_digest(candidate, wanted):
            found = candidate
    if found is None:
        return False
    stored.remove(found)
    account.recovery_codes = stored  # a new list: the sealed value is re-sealed at flush
    return True


def verify_code(account: Account, code: str, *, now: datetime) -> bool:
    """Whether ``code`` (a TOTP code or a recovery code) proves ``account``'s second
    factor; on success the code is spent (TOTP step recorded, recovery code removed)."""
    return proved_by(account, code, now=now) is not None


def proved_by(account: Account, code: str, *, now: datetime) -> Literal["totp", "recovery"] | None:
    """What ``code`` proved ``account``'s second factor with (``"totp"`` or
    ``"recovery"``), spending it, or None if it proves nothing."""
    code = code.strip().replace(" ", "")
    if not account.totp_enabled or not code or len(code) > MAX_CODE_LENGTH:
        return None
    secret = account.totp_secret
    if secret is None:
        return None
    if is_totp_code(code):
        step = totp_step(secret, code, now=now, last_step=account.totp_last_step)
        if step is None:
            return None
        account.totp_last_step = step
        return "totp"
    if not is_recovery_code(code):
        return None
    return "recovery" if _use_recovery_code(account, code) else None

"""Passwords: the policy a new password must meet, and argon2id hashing.

Guarantees:

- hashes are argon2id with at least OWASP's parameters (the production default is
  RFC 9106's low-memory profile: t=3, m=64 MiB, p=4, above OWASP's m=19 MiB, t=2,
  p=1); a hash made with other parameters is recomputed at the next sign-in;
- :func:`verify` takes as long for an account that does not exist (``stored`` is
  ``None``) as for a wrong password: it checks against a dummy hash made with the
  same parameters;
- :func:`check_policy` refuses fewer than 12 characters, more than 128, too few
  distinct characters, the shipped list of common and known-breached passwords, a
  common word with digits or symbols around it, and the user's own email address.

Not guaranteed: that a password is absent from every breach (there is no network
look-up; the list is shipped in ``data/common-passwords.txt``).

Passwords are NFKC-normalised before hashing, so the same password typed on two
keyboards that compose characters differently still matches.

Load: every hash and verification takes one of a bounded number of slots (the number
of CPUs by default, :func:`use_pool`), so a burst of sign-ins or registrations costs at
most that many times 64 MiB and that many cores; a caller that cannot get a slot within
the pool's short wait gets :class:`HashingBusy` (503 with ``Retry-After``), never a
pile of threads each holding a hash's memory. Callers compute a new password's hash
before their unit of work takes a database connection where they can (registration,
reset), so a wait for a slot never holds one.
"""

from __future__ import annotations

import base64
import os
import secrets
import threading
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from importlib import resources

from argon2 import Parameters, PasswordHasher, Type, profiles
from argon2.exceptions import InvalidHashError, VerificationError

from hippocrate.i18n import _n
from hippocrate.identity.errors import HashingBusy, WeakPassword

MIN_LENGTH = 12
MAX_LENGTH = 128
MIN_DISTINCT = 5

PRODUCTION_PARAMETERS: Parameters = profiles.RFC_9106_LOW_MEMORY
"""argon2id, t=3, m=64 MiB, p=4: about 0.1-0.2 s on one core of a current server."""

OWASP_MINIMUM = Parameters(
    type=Type.ID,
    version=19,
    salt_len=16,
    hash_len=32,
    time_cost=2,
    memory_cost=19 * 1024,
    parallelism=1,
)
"""The floor :func:`use_parameters` accepts outside tests (OWASP Password Storage Cheat
Sheet, argon2id)."""


class _State:
    parameters: Parameters = PRODUCTION_PARAMETERS
    hasher: PasswordHasher = PasswordHasher.from_parameters(PRODUCTION_PARAMETERS)
    dummy: str | None = None  # a hash of a random password, made with ``parameters``


class _Pool:
    """The slots hashes run in: per process, like the CPUs they share."""

    slots: int = os.cpu_count() or 1
    wait: float = 2.0
    semaphore: threading.BoundedSemaphore = threading.BoundedSemaphore(slots)


def use_pool(*, slots: int, wait: float) -> None:
    """Run at most ``slots`` hashes at once in this process; a caller waits at most
    ``wait`` seconds for a slot, then gets :class:`HashingBusy`. Hashes already running
    finish in the slots they took."""
    if slots < 1 or wait < 0:
        raise ValueError("the hashing pool needs at least one slot and a wait of 0 s or more")
    _Pool.slots, _Pool.wait = slots, wait
    _Pool.semaphore = threading.BoundedSemaphore(slots)


def pool_size() -> tuple[int, float]:
    """The pool's slots and wait (seconds)."""
    return _Pool.slots, _Pool.wait


@contextmanager
def _slot() -> Iterator[None]:
    semaphore = _Pool.semaphore  # the one acquired is the one released
    if not semaphore.acquire(timeout=_Pool.wait):
        raise HashingBusy()
    try:
        yield
    finally:
        semaphore.release()


def _normalise(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


def current_parameters() -> Parameters:
    return _State.parameters


def use_parameters(parameters: Parameters, *, unsafe_allow_weak: bool = False) -> Parameters:
    """Hash new passwords with ``parameters`` (and rehash older ones to them at sign-in);
    returns the previous parameters.

    Production keeps :data:`PRODUCTION_PARAMETERS`. Parameters below OWASP's floor are
    refused unless ``unsafe_allow_weak`` is set, which only tests do, to run fast.
    """
    if not unsafe_allow_weak and (
        parameters.type is not Type.ID
        or parameters.memory_cost < OWASP_MINIMUM.memory_cost
        or parameters.time_cost < OWASP_MINIMUM.time_cost
    ):
        raise ValueError("argon2 parameters below OWASP's minimum (argon2id, m=19 MiB, t=2)")
    previous = _State.parameters
    _State.parameters = parameters
    _State.hasher = PasswordHasher.from_parameters(parameters)
    _State.dummy = None
    return previous


@contextmanager
def unsafe_parameters(parameters: Parameters) -> Iterator[None]:
    """Use ``parameters`` (possibly weak) for the duration of the block: for tests."""
    previous = use_parameters(parameters, unsafe_allow_weak=True)
    try:
        yield
    finally:
        use_parameters(previous, unsafe_allow_weak=True)


def hash_password(password: str) -> str:
    """An argon2id hash (PHC string: parameters and salt included) of ``password``.
    Raises :class:`HashingBusy` if no slot of the pool frees within its wait."""
    hasher = _State.hasher
    with _slot():
        return hasher.hash(_normalise(password))


def _dummy_hash() -> str:
    if _State.dummy is None:
        _State.dummy = _State.hasher.hash(secrets.token_urlsafe(32))
    return _State.dummy


def verify(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored``; with ``stored`` ``None`` (no such
    account, or no password yet) the same work is done against a dummy hash, and the
    answer is False. Raises :class:`HashingBusy` (for known and unknown accounts alike)
    if no slot of the pool frees within its wait."""
    hasher = _State.hasher
    with _slot():
        target = stored or _dummy_hash()
        try:
            matched = hasher.verify(target, _normalise(password))
        except (VerificationError, InvalidHashError):
            return False
    return matched and stored is not None


def placeholder_hash() -> str:
    """A stand-in for the password hash of an account that has none yet (an imported
    patient who has not chosen one): a PHC string in the exact format and length of
    the hashes :func:`hash_password` makes with the current parameters, with a random
    salt and a random digest, made without running argon2.

    Sealed like a real hash, it makes a copy of the database show the same thing for
    an account that has a password and one that does not. No password matches it: a
    password would have to hash to 256 random bits (a preimage of argon2id), so
    :func:`verify` answers False, after the same work as for a wrong password."""
    parameters = _State.parameters
    salt = _b64(secrets.token_bytes(parameters.salt_len))
    digest = _b64(secrets.token_bytes(parameters.hash_len))
    kind = {Type.ID: "argon2id", Type.I: "argon2i", Type.D: "argon2d"}[parameters.type]
    return (
        f"${kind}$v={parameters.version}$m={parameters.memory_cost},"
        f"t={parameters.time_cost},p={parameters.parallelism}${salt}${digest}"
    )


def _b64(raw: bytes) -> str:
    """Unpadded standard base64, as the PHC string format (and argon2) write it."""
    return base64.b64encode(raw).decode("ascii").rstrip("=")


def needs_rehash(stored: str) -> bool:
    """Whether ``stored`` was made with other parameters than the current ones."""
    return _State.hasher.check_needs_rehash(stored)


# -- policy -----------------------------------------------------------------------------

_UNLEET = str.maketrans({"@": "a", "4": "a", "0": "o", "3": "e", "1": "i", "!": "i", "$": "s"})
_AFFIX = "0123456789!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ "


@cache
def _common() -> tuple[frozenset[str], frozenset[str]]:
    """The shipped list, and its entries of letters only (the bases of variants)."""
    text = (
        resources.files("hippocrate.identity")
        .joinpath("data/common-passwords.txt")
        .read_text(encoding="utf-8")
    )
    entries = frozenset(
        line.strip().lower() for line in text.splitlines() if line and not line.startswith("#")
    )
    bases = frozenset(e for e in entries if e.isalpha() and len(e) >= 4)
    return entries, bases


def common_password_count() -> int:
    return len(_common()[0])


def _skeleton(password: str) -> str:
    """Lowercase, spaces removed, digits and symbols stripped from both ends."""
    return password.lower().replace(" ", "").strip(_AFFIX)


def check_policy(password: str, *, email: str | None = None) -> None:
    """Refuse a password that is too short, too long, too repetitive, common, a common
    word dressed up with digits or symbols, or the user's own address. Raises
    :class:`WeakPassword` with a message that says which rule refused it."""
    password = _normalise(password)
    if len(password) < MIN_LENGTH:
        raise WeakPassword(
            _n("the password must have at least {minimum} characters"), minimum=MIN_LENGTH
        )
    if len(password) > MAX_LENGTH:
        raise WeakPassword(
            _n("the password must have at most {maximum} characters"), maximum=MAX_LENGTH
        )
    if len(set(password.lower())) < MIN_DISTINCT:
        raise WeakPassword(_n("the password repeats too few different characters"))
    entries, bases = _common()
    lowered = password.lower()
    skeleton = _skeleton(password)
    candidates = {lowered, lowered.replace(" ", ""), skeleton, skeleton.translate(_UNLEET)}
    if not skeleton or candidates & entries or _repeats_base(candidates, bases):
        raise WeakPassword(
            _n(
                "this password is too common (it is in lists of breached passwords, or is a "
                "common word with digits or symbols around it): choose a longer passphrase"
            )
        )
    if email:
        local = email.split("@", 1)[0].lower()
        if len(local) >= 4 and (
            local in lowered or local.replace(".", "") in skeleton.replace(".", "")
        ):
            raise WeakPassword(_n("the password must not contain your email address"))


def _repeats_base(candidates: set[str], bases: frozenset[str]) -> bool:
    """A common word, alone or repeated (``soleilsoleil``), after stripping affixes."""
    for candidate in candidates:
        for size in range(4, len(candidate) // 2 + 1):
            repeated = candidate[:size] * (len(candidate) // size) == candidate
            if len(candidate) % size == 0 and repeated and candidate[:size] in bases:
                return True
        if candidate in bases:
            return True
    return False

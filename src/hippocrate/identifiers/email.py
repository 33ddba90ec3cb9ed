"""Email addresses: canonical form for sealed storage and case-insensitive lookup.

The canonical form is what the login form's input is blind-indexed as, so it must
not depend on how the person typed the address that day: surrounding spaces,
capitals, full-width characters, an IDN domain in Unicode or in ``xn--`` form all
give the same string.

Why the local part is case-folded although RFC 5321 lets a server treat
``Jean@`` and ``jean@`` as two mailboxes: no mainstream provider does, people
do not remember which capitals they typed at registration, and a lookup that
misses on case would lock them out or let them register twice. Two accounts that
differ only by case in the local part are refused as one, which is what users
expect.

Why the domain is *not* case-folded with :meth:`str.casefold`: folding would turn
``straße.de`` into ``strasse.de``, a different domain under IDNA 2008. The domain
is mapped by email-validator's IDNA (UTS #46) processing instead, which lowercases
it the way DNS does.

Why the domain check is cached: checking an address's domain (UTS #46 mapping, IDNA
encoding, label rules) is about half the cost of the whole check, and an import of
millions of patients checks a few hundred domains millions of times. The check is a
pure function of the domain as written (and of email-validator's settings, which
Hippocrate never changes), so the library's own function is wrapped, for the
library's own use, with a bounded cache of its answers (:data:`DOMAIN_CACHE_SIZE`);
a domain it refuses is checked again each time (exceptions are not cached). Each
caller gets a copy of the answer, never the cached one.
"""

from __future__ import annotations

import functools
import importlib
import unicodedata
from typing import Any

from email_validator import EmailNotValidError, validate_email
from email_validator.syntax import validate_email_domain_name

from hippocrate.i18n import _n
from hippocrate.identifiers.errors import InvalidEmail

__all__ = ["normalise_email"]

MAX_LENGTH = 254
"""Longest canonical address, in UTF-8 octets (RFC 5321 path limit minus the < >)."""

MAX_INPUT_LENGTH = 1024
"""Longer input is refused before any Unicode processing."""

_MAX_FOLD_ROUNDS = 4

DOMAIN_CACHE_SIZE = 4096
"""Domains whose check is kept (least recently used out first)."""


@functools.lru_cache(maxsize=DOMAIN_CACHE_SIZE)
def _checked_domain(
    domain: str, test_environment: bool, globally_deliverable: bool
) -> tuple[tuple[str, Any], ...]:
    answer = validate_email_domain_name(
        domain, test_environment=test_environment, globally_deliverable=globally_deliverable
    )
    return tuple(answer.items())


def _cached_domain_check(
    domain: str, test_environment: bool = False, globally_deliverable: bool = True
) -> Any:
    """email-validator's ``validate_email_domain_name``, same signature and answers."""
    return dict(_checked_domain(domain, test_environment, globally_deliverable))


def _install_domain_cache() -> None:
    """Make email-validator's ``validate_email`` use the cached domain check, if it
    calls the function this module knows (another version of the library is left as
    it is: uncached, and as correct)."""
    module = importlib.import_module("email_validator.validate_email")
    name = validate_email_domain_name.__name__
    if getattr(module, name, None) is validate_email_domain_name:
        setattr(module, name, _cached_domain_check)


_install_domain_cache()


def _fold(local_part: str) -> str:
    """NFKC + case fold, repeated until stable.

    One round of ``NFKC(casefold(NFKC(s)))`` is not always a fixed point (Unicode
    defines NFKC_Casefold for that reason); repeating makes the result idempotent.
    """
    for _ in range(_MAX_FOLD_ROUNDS):
        folded = unicodedata.normalize("NFKC", local_part.casefold())
        if folded == local_part:
            return folded
        local_part = folded
    raise InvalidEmail(_n("The address contains unsupported characters."), code="syntax")


def normalise_email(value: str) -> str:
    """Return the canonical form of an email address, or raise :class:`InvalidEmail`.

    Steps: strip surrounding whitespace; Unicode NFKC; case-fold the part before the
    last ``@`` (see the module docstring for why, and why not the domain); check the
    syntax with email-validator (no DNS query: ``check_deliverability=False``), which
    also maps an internationalised domain through IDNA.

    Guarantees:
        - the result is ``local@domain`` with the local part unchanged by
          ``NFKC(casefold(.))`` (NFKC may recompose what case folding decomposed,
          as in U+0390, so it is that pair's fixed point rather than a bare
          ``casefold()`` output), the domain lowercase and in Unicode form (``bücher.de``,
          never ``xn--bcher-kva.de``), at most 254 octets in UTF-8 and in its
          IDNA-ASCII form;
        - no display name, quoted local part, IP-literal domain, nor special-use
          domain (``.local``, ``.test``, ``localhost``...): email-validator's defaults;
        - ``normalise_email(normalise_email(x)) == normalise_email(x)``.

    Not guaranteed: that the domain has a mail server or the mailbox exists.
    Provider-specific aliases (dots or ``+tag`` at Gmail) are kept: they are not the
    same address for every provider.

    Raises:
        InvalidEmail: code ``too_long`` (over 254 octets, before or after
            normalisation) or ``syntax`` (the message is email-validator's reason).
        TypeError: ``value`` is not a str.
    """
    if not isinstance(value, str):
        raise TypeError(f"email address must be a str, not {type(value).__name__}")
    if len(value) > MAX_INPUT_LENGTH:
        raise InvalidEmail(
            _n("The email address is too long (at most {maximum} characters)."),
            code="too_long",
            maximum=MAX_LENGTH,
        )
    value = unicodedata.normalize("NFKC", value.strip()).strip()
    local_part, at, domain = value.rpartition("@")
    if at:
        value = _fold(local_part) + at + domain
    # The same limit email-validator applies to the address as given; checked here so
    # the refusal carries the "too_long" code. "surrogatepass": a lone surrogate must
    # reach email-validator's clear refusal, not fail here with UnicodeEncodeError.
    if len(value.encode("utf-8", "surrogatepass")) > MAX_LENGTH:
        raise InvalidEmail(
            _n("The email address is too long (at most {maximum} characters)."),
            code="too_long",
            maximum=MAX_LENGTH,
        )
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidEmail(str(exc), code="syntax") from None
    normalised: str = result.normalized
    # email-validator enforces this today; checked again so the guarantee does not
    # depend on a library default.
    if (
        len(normalised.encode("utf-8")) > MAX_LENGTH
        or len(f"{result.local_part}@{result.ascii_domain}".encode()) > MAX_LENGTH
    ):
        raise InvalidEmail(
            _n("The email address is too long (at most {maximum} characters)."),
            code="too_long",
            maximum=MAX_LENGTH,
        )
    return normalised

"""The password policy, argon2 verification and the second-factor primitives, without
the app."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyotp
import pytest

from hippocrate.identity import factors, passwords
from hippocrate.identity.errors import WeakPassword
from hippocrate.identity.models import Account, Role

# -- password policy ----------------------------------------------------------------------


def test_the_shipped_list_holds_thousands_of_common_passwords() -> None:
    assert passwords.common_password_count() >= 3000


@pytest.mark.parametrize(
    "password",
    [
        "password1234",
        "PASSWORD1234",
        "Motdepasse2025!",
        "azertyuiop123",
        "qwertyuiop!!",
        "1q2w3e4r5t6y",
        "123456789012",
        "iloveyou2024",
        "Marseille13013",
        "S0leil123456789",
        "chouchou2026!",
        "hippocrate2026",
        "jetaimejetaime",
        "!!Dragon!!2024",
    ],
)
def test_common_passwords_and_their_dressed_up_forms_are_refused(password: str) -> None:
    with pytest.raises(WeakPassword, match="too common"):
        passwords.check_policy(password)


@pytest.mark.parametrize(
    "password",
    [
        "velvet-otter-marches-north",
        "Tr0ub4dor&3-xyzq",
        "la mer est calme ce matin",
        "Zq7!vR2#pL9@wK4",
    ],
)
def test_strong_passwords_are_accepted(password: str) -> None:
    passwords.check_policy(password, email="jeanne.martin@example.fr")


def test_length_limits() -> None:
    with pytest.raises(WeakPassword, match="at least 12"):
        passwords.check_policy("Zq7!vR2#pL9")
    with pytest.raises(WeakPassword, match="at most 128"):
        passwords.check_policy("Zq7!vR2#pL9@wK4" * 9)


def test_the_email_address_is_no_password() -> None:
    with pytest.raises(WeakPassword, match="email"):
        passwords.check_policy("jeanne.martin@1984", email="jeanne.martin@example.fr")


def test_verification_against_no_hash_is_always_false() -> None:
    assert passwords.verify(None, "anything at all") is False
    stored = passwords.hash_password("velvet-otter-marches-north")
    assert passwords.verify(stored, "velvet-otter-marches-north") is True
    assert passwords.verify(stored, "velvet-otter-marches-south") is False
    assert passwords.verify("not a hash", "velvet-otter-marches-north") is False


def test_unicode_passwords_match_however_they_are_composed() -> None:
    composed, decomposed = "café-crème-brûlée-42", "cafe\u0301-cre\u0300me-bru\u0302le\u0301e-42"

    assert passwords.verify(passwords.hash_password(composed), decomposed)


# -- TOTP and recovery codes --------------------------------------------------------------

NOW = datetime(2026, 3, 1, 12, 0, 10, tzinfo=UTC)


def _account() -> Account:
    account = Account(role=Role.PATIENT, owner_id=None)
    account.totp_secret = factors.new_secret()
    account.totp_enabled = True
    account.totp_last_step = None
    return account


def test_a_code_is_accepted_one_step_either_side_and_no_further() -> None:
    secret = factors.new_secret()
    totp = pyotp.TOTP(secret)

    for offset, accepted in [(-60, False), (-30, True), (0, True), (30, True), (60, False)]:
        code = totp.at(NOW + timedelta(seconds=offset))
        found = factors.totp_step(secret, code, now=NOW, last_step=None)
        assert (found is not None) is accepted, offset


def test_a_step_is_accepted_once_and_never_before_the_last_one() -> None:
    account = _account()
    totp = pyotp.TOTP(account.totp_secret or "")

    assert factors.verify_code(account, totp.at(NOW), now=NOW)
    assert not factors.verify_code(account, totp.at(NOW), now=NOW)
    assert not factors.verify_code(account, totp.at(NOW - timedelta(seconds=30)), now=NOW)
    assert factors.verify_code(account, totp.at(NOW + timedelta(seconds=30)), now=NOW)


def test_recovery_codes_are_80_bits_stored_as_digests_and_used_once() -> None:
    account = _account()
    shown, stored = factors.new_recovery_codes()
    account.recovery_codes = stored

    assert len(shown) == len(set(shown)) == factors.RECOVERY_CODE_COUNT
    assert all(len(code.replace("-", "")) == 16 for code in shown)  # 16 base32 = 80 bits
    assert not set(shown) & set(stored)
    assert factors.verify_code(account, shown[3], now=NOW)
    assert not factors.verify_code(account, shown[3], now=NOW)
    assert len(account.recovery_codes or []) == factors.RECOVERY_CODE_COUNT - 1


def test_nothing_passes_for_an_account_without_a_second_factor() -> None:
    account = _account()
    code = pyotp.TOTP(account.totp_secret or "").at(NOW)
    account.totp_enabled = False

    assert not factors.verify_code(account, code, now=NOW)

"""The placeholder password hash of an account that has none yet: the format and length
of a real argon2id hash made with the current parameters, random each time, made
without running argon2, and matched by no password."""

from __future__ import annotations

import re
import time

from hippocrate.identity import passwords
from tests.identity.helpers import fast_password_hashing

PHC = re.compile(r"\$argon2id\$v=19\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}")


def test_a_placeholder_looks_like_a_real_hash_and_no_password_matches_it() -> None:
    real = passwords.hash_password("une phrase de passe assez longue")
    placeholder = passwords.placeholder_hash()
    assert PHC.fullmatch(real)
    assert PHC.fullmatch(placeholder)
    assert len(placeholder) == len(real)
    # The same parameters: a copy cannot tell them apart by the PHC prefix either.
    assert placeholder.rsplit("$", 2)[0] == real.rsplit("$", 2)[0]
    assert not passwords.needs_rehash(placeholder)
    assert passwords.placeholder_hash() != placeholder
    for guess in ("", "une phrase de passe assez longue", placeholder):
        assert not passwords.verify(placeholder, guess)


def test_a_placeholder_is_made_without_running_argon2() -> None:
    with passwords.unsafe_parameters(passwords.PRODUCTION_PARAMETERS):
        started = time.perf_counter()
        for _ in range(1000):
            made = passwords.placeholder_hash()
        elapsed = time.perf_counter() - started
    assert ",t=3,p=4$" in made
    # One argon2id hash with the production parameters takes 0.1 s or more: a
    # thousand would take minutes.
    assert elapsed < 0.5
    with fast_password_hashing():  # the prefix follows whatever parameters are current
        assert (
            passwords.placeholder_hash().rsplit("$", 2)[0]
            == (passwords.hash_password("une phrase de passe assez longue").rsplit("$", 2)[0])
        )

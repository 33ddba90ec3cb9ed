"""Shared by the breach tests: password hashing at test speed (the accounts of the
scripted attacks sign in the real way, many times)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.identity.helpers import fast_password_hashing


@pytest.fixture(autouse=True)
def _fast_passwords() -> Iterator[None]:
    with fast_password_hashing():
        yield

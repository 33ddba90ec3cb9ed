"""The exception hierarchy callers map to 4xx answers."""

from __future__ import annotations

import pickle

import pytest

from hippocrate.identifiers import InvalidEmail, InvalidIdentifier, InvalidNIR, InvalidPhone


@pytest.mark.parametrize(
    ("cls", "field"),
    [(InvalidNIR, "nir"), (InvalidPhone, "phone"), (InvalidEmail, "email")],
)
def test_subclasses_name_their_field(cls: type[InvalidIdentifier], field: str) -> None:
    exc = cls("The value is wrong.", code="characters")
    assert isinstance(exc, InvalidIdentifier)
    assert isinstance(exc, ValueError)
    assert exc.field == field
    assert exc.code == "characters"
    assert exc.message == str(exc) == "The value is wrong."


def test_base_class_takes_a_field() -> None:
    exc = InvalidIdentifier("sex must be M or F.", field="sex")
    assert exc.field == "sex"
    assert exc.code == "invalid"
    assert InvalidIdentifier("x").field == "identifier"


def test_exceptions_survive_pickling() -> None:
    """Worker pools and test runners pickle exceptions: attributes must survive."""
    exc = InvalidNIR("The key does not match.", code="check_key")
    copy = pickle.loads(pickle.dumps(exc))
    assert type(copy) is InvalidNIR
    assert (copy.field, copy.code, copy.message) == ("nir", "check_key", str(exc))

"""One handler answers every domain's refusals from the attributes they carry: a new
error is answered right without being registered anywhere."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI

import hippocrate.app  # noqa: F401  (imports every domain, so every error class is known)
from hippocrate.admin.errors import ApprovalExpired
from hippocrate.api import problems
from hippocrate.errors import HippocrateError
from hippocrate.identity.errors import SignInRefused

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette\.testclient`")
    from fastapi.testclient import TestClient


class ParcelLost(HippocrateError):
    """An error of a domain that does not exist yet: nothing registers it."""

    status = 409
    title = "Parcel lost"

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": "7"}

    @property
    def extensions(self) -> dict[str, Any]:
        return {"parcel": "P-1"}


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = FastAPI()
    problems.install(app)

    @app.get("/api/lost")
    def lost() -> None:
        raise ParcelLost("the parcel was lost on the way")

    @app.get("/api/bare")
    def bare() -> None:
        raise HippocrateError()

    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_a_new_error_is_answered_from_its_own_attributes(client: TestClient) -> None:
    response = client.get("/api/lost")
    assert response.status_code == 409
    assert response.headers["content-type"] == problems.PROBLEM_JSON
    assert response.headers["retry-after"] == "7"
    assert response.json() == {
        "type": "about:blank",
        "title": "Parcel lost",
        "status": 409,
        "detail": "the parcel was lost on the way",
        "parcel": "P-1",
    }


def test_an_error_without_a_message_has_no_detail(client: TestClient) -> None:
    response = client.get("/api/bare")
    assert response.status_code == 400
    assert response.json() == {"type": "about:blank", "title": "Bad request", "status": 400}


def _every_error() -> list[type[HippocrateError]]:
    found: list[type[HippocrateError]] = []
    pending = [HippocrateError]
    while pending:
        error = pending.pop()
        found.append(error)
        pending.extend(error.__subclasses__())
    return [e for e in found if e.__module__.startswith("hippocrate.")]


def test_every_domain_error_is_a_refusal_or_unavailable_data() -> None:
    errors = _every_error()
    assert len(errors) > 30  # the walk found the domains' errors, not only the base
    for error in errors:
        assert 400 <= error.status < 500 or error.status == 503, error
        assert error.title, error


def test_only_counted_sign_in_refusals_commit_their_unit_of_work() -> None:
    committing = {e for e in _every_error() if e.commit}
    sign_in = {e for e in _every_error() if issubclass(e, SignInRefused)}
    # Besides the counted sign-in refusals, one refusal keeps what it recorded: a
    # four-eyes request found expired is marked so (it cannot be approved later).
    assert committing == sign_in | {ApprovalExpired}
    assert len(sign_in) >= 4  # the base and wrong credentials, wrong code, lock

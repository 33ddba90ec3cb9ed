"""Attack tests: one stolen administrator session creates no staff account that can
sign in (practitioner, support or dpo, as for an administrator); a second
administrator's approval activates it and its setup link goes to its own address only;
a refused or expired request frees the address and the RPPS number; a specialty off
the catalogue or an RPPS number with a wrong check digit is refused, writing nothing."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from hippocrate.admin.models import FourEyesRequest
from hippocrate.identity.models import Account, AccountStatus, Practitioner
from tests.admin.helpers import admin, events, mailbox, plain_api, relogin, status_of
from tests.conftest import Store
from tests.consultations.helpers import Api, assert_problem
from tests.identity.conftest import link_token
from tests.identity.helpers import new_password

#: What a setup (or any link) token looks like: 32 random bytes, URL-safe base64.
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_\-]{40,}")
RPPS = "10001234565"  # passes its Luhn check digit
OTHER_RPPS = "10009999995"


@pytest.fixture
def api(sqlite_store: Store, tmp_path: Path) -> Iterator[Api]:
    with plain_api(sqlite_store, tmp_path) as running:
        yield running


@pytest.fixture
def api_on(store: Store, tmp_path: Path) -> Iterator[Api]:
    with plain_api(store, tmp_path) as running:
        yield running


def practitioner_body(email: str, **changes: Any) -> dict[str, Any]:
    body = {
        "email": email,
        "given_names": "Jeanne",
        "family_name": "Roux",
        "rpps": RPPS,
        "specialty": "psychiatry",
    }
    body.update(changes)
    return body


def ask(api: Api, headers: dict[str, str], role: str, email: str, **changes: Any) -> Any:
    """What a (stolen) administrator session sends to create a staff account."""
    if role == "practitioner":
        return api.client.post(
            "/api/v1/admin/practitioners",
            headers=headers,
            json=practitioner_body(email, **changes),
        )
    return api.client.post(
        "/api/v1/admin/staff", headers=headers, json={"email": email, "role": role}
    )


def outbox(api: Api) -> list[EmailMessage]:
    """Every message of the outbox, whoever it is for."""
    found = []
    for path in sorted(api.settings.outbox_dir.glob("*.eml")):
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        found.append(message)
    return found


def accounts_count(api: Api) -> int:
    with api.store.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Account)) or 0)


def requests_count(api: Api) -> int:
    with api.store.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(FourEyesRequest)) or 0)


def practitioners_of(api: Api, account_id: uuid.UUID) -> int:
    with api.store.sessions() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(Practitioner)
                .where(Practitioner.account_id == account_id)
            )
            or 0
        )


# -- one admin alone ----------------------------------------------------------------------


def _one_admin_alone(api: Api, role: str) -> None:
    thief_user, thief = admin(api)
    colleague_user, _ = admin(api)
    email = f"complice.{role}@example.org"
    seen: list[str] = []  # every answer body the stolen session receives

    asked = ask(api, thief.headers, role, email)
    seen.append(asked.text)

    assert asked.status_code == 202, asked.text
    request = asked.json()
    new_account = uuid.UUID(request["target_id"])
    assert (request["action"], request["role"], request["outcome"]) == (
        "create_staff",
        role,
        "pending",
    )
    assert "setup_token" not in request
    assert status_of(api, new_account) == (AccountStatus.DISABLED, "awaiting approval")
    # Whatever the one session tries next, the account stays unusable.
    for path, body in (
        (f"/api/v1/admin/accounts/{new_account}/enable", None),
        (f"/api/v1/admin/accounts/{new_account}/recovery", {}),
    ):
        answer = api.client.post(path, headers=thief.headers, json=body)
        seen.append(answer.text)
        assert "awaits" in assert_problem(answer, 409)["detail"]
    release = api.client.post(
        f"/api/v1/admin/accounts/{new_account}/release",
        headers=thief.headers,
        json={"reason": "Faux positif vérifié par téléphone avec le praticien"},
    )
    seen.append(release.text)
    assert release.status_code in (404, 409), release.text
    own = api.client.post(f"/api/v1/admin/approvals/{request['id']}/approve", headers=thief.headers)
    seen.append(own.text)
    assert_problem(own, 403)
    listed = api.client.get("/api/v1/admin/approvals", headers=thief.headers)
    seen.append(listed.text)
    reset = api.client.post("/api/v1/auth/password-reset", json={"email": email})
    seen.append(reset.text)
    # No answer carries anything shaped like a token, and nothing was mailed to the
    # new address: there is nothing to set a password with, so no sign-in.
    for text in seen:
        assert TOKEN_PATTERN.search(text) is None, text
    assert mailbox(api, email) == []
    for message in outbox(api):
        assert "token=" not in message.as_string()
    signed = api.client.post(
        "/api/v1/auth/login", json={"email": email, "password": new_password()}
    )
    assert_problem(signed, 401)
    assert status_of(api, new_account) == (AccountStatus.DISABLED, "awaiting approval")
    assert events(api, f"account:{role}:created") == []
    # Both administrators were told what was asked in the thief's name.
    for user in (thief_user, colleague_user):
        assert len(mailbox(api, user.email)) == 1


def test_one_admin_session_cannot_create_a_practitioner_that_signs_in(api_on: Api) -> None:
    _one_admin_alone(api_on, "practitioner")


@pytest.mark.parametrize("role", ["support", "dpo"])
def test_one_admin_session_cannot_create_a_support_or_dpo_account(api: Api, role: str) -> None:
    _one_admin_alone(api, role)


# -- a second administrator -----------------------------------------------------------------


def test_a_second_admin_approves_and_the_setup_link_reaches_the_new_address_only(
    api_on: Api,
) -> None:
    api = api_on
    first_user, first = admin(api)
    second_user, second = admin(api)
    email = "dr.roux@example.org"
    seen: list[str] = []
    asked = ask(api, first.headers, "practitioner", email)
    seen.append(asked.text)
    request_id = asked.json()["id"]
    new_account = uuid.UUID(asked.json()["target_id"])
    listed = api.client.get("/api/v1/admin/approvals", headers=second.headers)
    seen.append(listed.text)
    [item] = listed.json()["items"]
    assert (item["role"], item["specialty"]) == ("practitioner", "psychiatry")

    approved = api.client.post(
        f"/api/v1/admin/approvals/{request_id}/approve", headers=second.headers
    )
    seen.append(approved.text)

    assert approved.status_code == 200, approved.text
    assert approved.json()["outcome"] == "approved"
    assert status_of(api, new_account) == (AccountStatus.ACTIVE, None)
    token = link_token(mailbox(api, email)[-1])
    # The token is in one message, to the new address, and in no answer nor any
    # administrator's mailbox.
    carrying = [m["To"] for m in outbox(api) if token in m.as_string()]
    assert carrying == [email]
    for text in seen:
        assert token not in text
        assert TOKEN_PATTERN.search(text) is None, text
    for user in (first_user, second_user):
        assert "token=" not in "".join(m.as_string() for m in mailbox(api, user.email))
    password = new_password()
    done = api.client.post(
        "/api/v1/auth/password-reset/complete", json={"token": token, "password": password}
    )
    assert done.status_code == 204, done.text
    signed = api.client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert signed.status_code == 200, signed.text
    assert signed.json()["mfa_setup_required"] is True
    [created] = events(api, "account:practitioner:created")
    assert created.actor_account_id == second.account_id


def test_a_refused_practitioner_is_deleted_and_its_address_and_rpps_freed(api_on: Api) -> None:
    api = api_on
    _, first = admin(api)
    _, second = admin(api)
    email = "dr.refuse@example.org"
    asked = ask(api, first.headers, "practitioner", email).json()
    new_account = uuid.UUID(asked["target_id"])
    taken = ask(api, first.headers, "practitioner", "dr.other@example.org")
    assert "RPPS" in assert_problem(taken, 409)["detail"]  # held while it waits

    refused = api.client.post(
        f"/api/v1/admin/approvals/{asked['id']}/refuse", headers=second.headers
    )

    assert refused.status_code == 200, refused.text
    assert status_of(api, new_account)[0] is AccountStatus.DELETED
    assert practitioners_of(api, new_account) == 0
    assert mailbox(api, email) == []
    again = ask(api, first.headers, "practitioner", email)
    assert again.status_code == 202, again.text
    other = ask(api, first.headers, "practitioner", "dr.third@example.org", rpps=OTHER_RPPS)
    assert other.status_code == 202, other.text


def test_an_expired_request_deletes_the_account_and_frees_the_address(api: Api) -> None:
    first_user, first = admin(api)
    second_user, _ = admin(api)
    email = "support.expire@example.org"
    asked = ask(api, first.headers, "support", email).json()

    api.clock.advance(hours=24, seconds=1)
    second = relogin(api, second_user)  # staff sessions idle out
    listed = api.client.get("/api/v1/admin/approvals", headers=second.headers)

    assert listed.json()["total"] == 0
    assert status_of(api, uuid.UUID(asked["target_id"]))[0] is AccountStatus.DELETED
    approve = api.client.post(
        f"/api/v1/admin/approvals/{asked['id']}/approve", headers=second.headers
    )
    assert_problem(approve, 409)
    assert mailbox(api, email) == []
    assert ask(api, relogin(api, first_user).headers, "support", email).status_code == 202


# -- what an administrator types ------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"specialty": "general_practice"}, "specialty", ("catalogue", "general-practice")),
        ({"specialty": "Dermatologie"}, "specialty", ("catalogue",)),
        ({"rpps": "10001234567"}, "rpps", ("Luhn", "11 digits")),  # wrong check digit
        ({"rpps": "1000123456"}, "rpps", ("11 digits",)),
        ({"rpps": "١٠٠٠١٢٣٤٥٦٥"}, "rpps", ("11 digits",)),  # Arabic-Indic digits
    ],
)
def test_a_wrong_specialty_or_rpps_is_refused_with_its_rule_and_writes_nothing(
    api_on: Api, changes: dict[str, Any], field: str, words: tuple[str, ...]
) -> None:
    api = api_on
    _, first = admin(api)
    before = accounts_count(api), requests_count(api)

    answer = ask(api, first.headers, "practitioner", "dr.typo@example.org", **changes)

    problem = assert_problem(answer, 422)
    [error] = problem["errors"]
    assert error["loc"] == ["body", field]
    for word in words:
        assert word in error["msg"]
    assert str(next(iter(changes.values()))) not in answer.text  # never echoed back
    assert "dr.typo" not in answer.text
    assert (accounts_count(api), requests_count(api)) == before
    assert mailbox(api, "dr.typo@example.org") == []

"""The public check of a received message (``POST /api/v1/messages/check``): anyone
pastes a code or a whole message and learns whether the platform sent it, when and of
what kind, and nothing of the recipient. Through the real app, a real registration and
the outbox it writes, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import statistics
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from hippocrate.breach.notices import TEMPLATE as BREACH_NOTICE
from hippocrate.identity.models import Account, AccountStatus, Role
from hippocrate.notify.check import KINDS, MAX_CANDIDATES, candidates
from hippocrate.notify.digest import code_digest, code_key
from hippocrate.notify.models import OutboundEmail
from hippocrate.notify.service import new_code, normalise_code, send, send_queued
from hippocrate.notify.templates import TEMPLATES
from hippocrate.patients.models import Patient
from tests.conftest import Store
from tests.identity.conftest import Env, assert_problem, link_token, running, text_of
from tests.identity.helpers import fast_password_hashing, patient_data

CHECK = "/api/v1/messages/check"
PASSWORD = "velvet-otter-marches-north"
FIELDS = {
    "sent_by_hippocrate",
    "sent_on",
    "kind",
    "verdict",
    "warnings",
    "never_contains",
    "how_to_be_sure",
}


@pytest.fixture(autouse=True)
def _fast_passwords() -> Iterator[None]:
    with fast_password_hashing():
        yield


@pytest.fixture
def env(store: Store, tmp_path: Path) -> Iterator[Env]:
    with running(store, tmp_path) as env:
        yield env


def _registered(env: Env) -> tuple[dict[str, Any], EmailMessage]:
    """A patient registered through the API, and the email that asks them to confirm."""
    body = patient_data().model_dump(mode="json")
    body["password"] = PASSWORD
    assert env.client.post("/api/v1/auth/register", json=body).status_code == 202
    [message] = env.emails_to(body["email"])
    return body, message


def _code_of(message: EmailMessage) -> str:
    [code] = [
        line.split(":", 1)[1].strip()
        for line in text_of(message).splitlines()
        if line.startswith("Code de vérification")
    ]
    return code


def _check(env: Env, pasted: str, **headers: str) -> Any:
    return env.client.post(CHECK, json={"text": pasted}, headers=headers)


def _whole(message: EmailMessage) -> str:
    return f"Subject: {message['Subject']}\nFrom: {message['From']}\n\n{text_of(message)}"


def test_a_genuine_email_pasted_whole_is_found(env: Env) -> None:
    _, message = _registered(env)
    html_part = message.get_body(preferencelist=("html",))
    assert html_part is not None

    whole = _check(env, _whole(message))
    as_html = _check(env, html_part.get_content())
    typed = _check(env, _code_of(message).lower().replace("-", " "))

    for response in (whole, as_html, typed):
        assert response.status_code == 200, response.text
        answer = response.json()
        assert set(answer) == FIELDS
        assert answer["sent_by_hippocrate"] is True
        assert answer["kind"] == "link"
        assert answer["sent_on"] == datetime.now(UTC).date().isoformat()
        assert answer["warnings"] == []
        assert "Hippocrate sent a message carrying this code" in answer["verdict"]


def test_a_made_up_code_was_not_sent_by_hippocrate(env: Env) -> None:
    _, message = _registered(env)
    genuine = normalise_code(_code_of(message))
    made_up = next(c for c in iter(new_code, None) if normalise_code(c) != genuine)

    response = _check(env, f"Code de vérification : {made_up}")

    assert response.status_code == 200
    answer = response.json()
    assert set(answer) == FIELDS  # the same shape as a code that was sent
    assert answer["sent_by_hippocrate"] is False
    assert (answer["sent_on"], answer["kind"]) == (None, None)
    assert "sent no message carrying this code" in answer["verdict"]
    assert any("password" in line for line in answer["never_contains"])


def test_the_answer_carries_nothing_of_the_recipient(env: Env) -> None:
    body, message = _registered(env)
    with env.store.sessions() as session:
        account = session.scalars(select(Account)).one()
        patient = session.scalars(select(Patient)).one()
        email = session.scalars(select(OutboundEmail)).one()
        secrets_of_recipient = [
            body["email"],
            body["email"].split("@")[0],
            body["family_name"],
            body["given_names"],
            str(account.id),
            account.id.hex,
            str(account.owner_id),
            str(patient.id),
            str(email.id),
            email.id.hex,
            email.template,  # the exact template is not told, only its generic kind
        ]

    english = _check(env, _whole(message))
    french = _check(env, _whole(message), **{"Accept-Language": "fr"})

    assert english.json()["sent_by_hippocrate"] is True
    assert "Hippocrate a envoyé un message portant ce code" in french.json()["verdict"]
    for response in (english, french):
        for value in secrets_of_recipient:
            assert value.casefold() not in response.text.casefold(), value
        assert set(response.headers) & {"set-cookie", "location"} == set()


def test_a_copy_of_the_database_cannot_test_a_code(env: Env) -> None:
    _, message = _registered(env)
    code = _code_of(message)
    normalised = normalise_code(code)
    assert normalised is not None
    with env.store.engine.connect() as connection:
        stored = connection.execute(text("SELECT code_digest FROM outbound_emails")).scalars()
        digests = [bytes(d) for d in stored if d is not None]
    assert len(digests) == 1
    unkeyed = {
        hashlib.sha256(form.encode()).digest()
        for form in (code, normalised, normalised.lower(), code.lower())
    }
    other_key = hmac.new(secrets.token_bytes(32), normalised.encode(), hashlib.sha256).digest()

    assert unkeyed.isdisjoint(digests)
    assert other_key not in digests
    # What is stored is the digest under the provider's derived key, and nothing else.
    with env.store.sessions() as session:
        assert digests == [code_digest(code_key(session), normalised)]
    if env.store.path is not None:
        raw = env.store.path.read_bytes()
        assert code.encode() not in raw
        assert normalised.encode() not in raw


def test_a_genuine_code_copied_into_another_message_is_reported(env: Env) -> None:
    _, message = _registered(env)
    alert = TEMPLATES["security_alert"]
    forged = (
        f"{alert.subject}\n\n{alert.paragraphs[0]}\n"
        "Vérifiez votre compte : https://hippocrate-securite.example.com/login\n"
        f"Code de vérification : {_code_of(message)}"
    )

    answer = _check(env, forged).json()

    assert answer["sent_by_hippocrate"] is True  # the code is genuine ...
    assert answer["kind"] == "link"  # ... but it came with a link to confirm an address
    assert len(answer["warnings"]) == 2
    assert "does not read like the message" in answer["warnings"][0]
    public_url = env.settings.public_url.rstrip("/")
    assert f"links that do not lead to {public_url} (1)" in answer["warnings"][1]


def test_checks_are_audited_without_patient_data(env: Env) -> None:
    _, message = _registered(env)
    with env.store.sessions() as session:
        email_id = session.scalars(select(OutboundEmail.id)).one()
        before = session.scalar(text("SELECT max(seq) FROM audit_events"))

    _check(env, _whole(message))
    _check(env, "ZZZZ-ZZZZ")

    with env.store.engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT action, patient_id, resources, categories, actor_role FROM audit_events "
                "WHERE seq > :seq ORDER BY seq"
            ),
            {"seq": before},
        ).all()
    checked = [r for r in rows if r.action == "notification:message:checked"]
    assert len(checked) == 2
    found, unknown = (_json(r.resources) for r in checked)
    assert found == [f"notification:{email_id}"]
    assert unknown == []
    assert all(r.patient_id is None and _json(r.categories) == [] for r in checked)
    assert {r.actor_role for r in checked} == {"anonymous"}
    # The lookup opens nothing: no read of any sealed value by the checks.
    assert [r.action for r in rows if r.action.endswith(":read")] == []


def _json(value: Any) -> Any:
    import json

    return json.loads(value) if isinstance(value, str) else value


def test_checks_are_throttled_per_address(store: Store, tmp_path: Path) -> None:
    with running(store, tmp_path, message_checks_per_client=3) as env:
        answers = [_check(env, "K7PX-3QHM") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert int(answers[-1].headers["Retry-After"]) > 0
    assert "message check" in assert_problem(answers[-1], 429)["detail"]


def test_checks_are_throttled_overall(store: Store, tmp_path: Path) -> None:
    with running(store, tmp_path, message_checks_global=2) as env:
        first = _check(env, "K7PX-3QHM")
        second = _check(env, "K7PX-3QHM")
        third = _check(env, "K7PX-3QHM")
    assert [first.status_code, second.status_code, third.status_code] == [200, 200, 429]
    assert int(third.headers["Retry-After"]) > 0


def test_refused_texts_count_against_the_limit(store: Store, tmp_path: Path) -> None:
    with running(store, tmp_path, message_checks_per_client=2) as env:
        answers = [_check(env, "no code here"), _check(env, ""), _check(env, "K7PX-3QHM")]
    assert [a.status_code for a in answers] == [422, 422, 429]


@pytest.mark.parametrize(
    "pasted",
    [
        "Bonjour, voici le message que j'ai reçu, sans code.",
        "K7PX-3QH",  # one character short
        "K7PX-3QH0",  # 0 is not in the alphabet
    ],
)
def test_a_text_without_a_code_is_refused_with_a_useful_message(env: Env, pasted: str) -> None:
    body = assert_problem(_check(env, pasted), 422)
    assert "no verification code" in body["detail"]
    assert "K7PX-3QHM" in body["detail"]


def test_a_text_too_long_or_empty_is_refused(env: Env) -> None:
    assert_problem(_check(env, "x" * 20_001), 422)
    assert_problem(_check(env, ""), 422)
    assert_problem(env.client.post(CHECK, json={"code": "K7PX-3QHM"}), 422)


def test_the_answer_does_not_tell_whether_the_account_still_exists(env: Env) -> None:
    body, message = _registered(env)
    token = link_token(message)
    assert env.client.post("/api/v1/auth/verify-email", json={"token": token}).status_code == 204
    login = env.post_login(body["email"], PASSWORD).json()
    auth = {"Authorization": f"Bearer {login['token']}"}
    before = _check(env, _whole(message)).json()

    deleted = env.client.request(
        "DELETE", "/api/v1/patients/me", headers=auth, json={"password": PASSWORD}
    )
    assert deleted.status_code == 204, deleted.text
    after = _check(env, _whole(message)).json()
    farewell = env.emails_to(body["email"])[-1]
    last = _check(env, _whole(farewell)).json()

    assert after == before
    assert before["sent_by_hippocrate"] is True
    assert (last["sent_by_hippocrate"], last["kind"]) == (True, "security")


def test_a_queued_email_recorded_without_a_digest_gets_one_when_sent(env: Env) -> None:
    now = datetime.now(UTC)
    with env.store.sessions.begin() as session:  # as a bulk import records invitations
        account = Account(role=Role.PATIENT, owner_id=uuid.uuid4(), status=AccountStatus.ACTIVE)
        account.email = "imported.patient@example.org"
        session.add(account)
        session.flush()
        record = OutboundEmail(
            account_id=account.id, owner_id=account.owner_id, template="new_message"
        )
        record.verification_code = code = new_code()
        session.add(record)
    queued = _check(env, code).json()
    with env.store.sessions.begin() as session:
        stored = session.get(OutboundEmail, record.id)
        me = session.get(Account, account.id)
        assert stored is not None
        assert me is not None
        send_queued(session=session, settings=env.settings, record=stored, account=me, now=now)

    sent = _check(env, code).json()

    assert queued["sent_by_hippocrate"] is False  # recorded, neither digest nor sent yet
    assert (sent["sent_by_hippocrate"], sent["kind"]) == (True, "waiting")


def test_a_message_never_delivered_is_not_found(env: Env) -> None:
    with env.store.sessions.begin() as session:
        account = Account(role=Role.PATIENT, owner_id=uuid.uuid4(), status=AccountStatus.ACTIVE)
        session.add(account)  # no address: the email is recorded, and fails at once
        session.flush()
        record = send(
            session=session,
            settings=env.settings,
            account=account,
            template="security_alert",
            now=datetime.now(UTC),
        )
        code = record.verification_code
    assert code is not None
    with env.store.sessions() as session:
        stored = session.get(OutboundEmail, record.id)
        assert stored is not None
        assert stored.failed_at is not None
        assert stored.code_digest is not None

    assert _check(env, code).json()["sent_by_hippocrate"] is False


def test_messages_recorded_before_the_upgrade_are_found_once_their_account_is_written_to(
    env: Env,
) -> None:
    body, message = _registered(env)
    verified = env.client.post("/api/v1/auth/verify-email", json={"token": link_token(message)})
    assert verified.status_code == 204
    with env.store.engine.begin() as connection:  # as migration 0015 leaves older rows
        connection.execute(text("UPDATE outbound_emails SET code_digest = NULL"))
    unknown = _check(env, _whole(message)).json()

    # Registering the address again writes to its owner (a reset link): sending opens
    # the owner's latest codes to draw a new one, and indexes the older ones.
    again = dict(body, password="another-long-passphrase")
    assert env.client.post("/api/v1/auth/register", json=again).status_code == 202
    found = _check(env, _whole(message)).json()

    assert unknown["sent_by_hippocrate"] is False
    assert (found["sent_by_hippocrate"], found["kind"]) == (True, "link")


def test_a_known_code_and_an_unknown_one_take_the_same_time(store: Store, tmp_path: Path) -> None:
    """Interleaved checks of a genuine code and of a made-up one: the medians are within
    a quarter of each other (run with -s to see them; docs/NOTIFICATIONS.md)."""
    rounds = 150
    with running(store, tmp_path, message_checks_per_client=10 * rounds) as env:
        _, message = _registered(env)
        genuine = _code_of(message)
        made_up = next(c for c in iter(new_code, None) if normalise_code(c) != genuine)
        times: dict[str, list[float]] = {genuine: [], made_up: []}
        for _ in range(10):  # warm up both paths
            _check(env, genuine)
            _check(env, made_up)
        for _ in range(rounds):
            for code in (genuine, made_up):
                started = time.perf_counter()
                response = _check(env, code)
                times[code].append(time.perf_counter() - started)
                assert response.status_code == 200
    known, unknown = (statistics.median(times[c]) * 1000 for c in (genuine, made_up))
    print(f"\n{store.backend}: known {known:.2f} ms, unknown {unknown:.2f} ms (medians)")
    assert 0.8 < known / unknown < 1.25


# -- the parts, without the app ---------------------------------------------------------


def test_every_template_has_a_generic_kind() -> None:
    # Every template, and the breach notice (rendered by breach/notices.py).
    assert set(KINDS) == {*TEMPLATES, BREACH_NOTICE}
    assert len(set(KINDS.values())) == 3


def test_candidates_put_the_labelled_code_first_and_are_bounded() -> None:
    noise = " ".join(f"AB{i:02d}-CD{i:02d}".replace("0", "2").replace("1", "3") for i in range(20))
    found = candidates(f"{noise}\nCode de vérification : k7px 3qhm\n")
    assert found[0] == "K7PX3QHM"
    assert len(found) == MAX_CANDIDATES
    assert candidates("k 7 p x - 3 q h m") == ["K7PX3QHM"]
    # A longer code (a document's) is not read as one of ours.
    assert candidates("ABCD-EFGH-JKMN") == []

"""Round trips per request on the security tax's routes, held under a bound.

Counted, not timed (``bench.round_trips``: every statement the engine sends, every
connection check the pool makes, beside the audit chainer's own thread), on SQLite and
PostgreSQL, caches warm: reading a consultation's 20 messages, posting a message with a
PDF, listing consultations. docs/BENCHMARKS.md lists what each statement is; a change
that adds one to a route fails here and says which statements it sent, so the bound
moves only on purpose.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bench.round_trips import Counter, Trips, count_route
from sqlalchemy import event

from tests.conftest import Store
from tests.consultations.helpers import Actor, Api, pdf_bytes, running_api

MESSAGES = 20
#: The most statements one request of each route may send (SQLite, PostgreSQL); the
#: guard's state is in the database here (PostgreSQL adds its per-account lock).
BOUNDS = {
    "read": {"sqlite": 14, "postgresql": 15},
    "post": {"sqlite": 21, "postgresql": 22},
    "list": {"sqlite": 8, "postgresql": 8},
}
PDF = pdf_bytes("Compte rendu : NFS normale.")


@pytest.fixture
def chained_apart(store: Store, tmp_path: Path) -> Iterator[Api]:
    """The app with its chainer thread running, as served (the suite's default chains
    inline after each commit, which would count the chainer's statements as the
    request's)."""
    with running_api(store, tmp_path, audit_chain_seconds=0.5) as running:
        yield running


def _world(api: Api) -> tuple[Actor, Actor, str, str]:
    patient, doctor = api.patient(), api.practitioner()
    read_id = api.open(patient)["id"]
    api.take(doctor)
    for n in range(MESSAGES):
        author = patient if n % 2 == 0 else doctor
        assert api.write(author, read_id, f"Message {n + 1}").status_code == 201
    post_id = api.open(patient, subject="Toux")["id"]
    api.take(doctor)
    return patient, doctor, read_id, post_id


def _sends(patient: Actor, doctor: Actor, read_id: str, post_id: str) -> dict[str, Any]:
    return {
        "read": lambda http, _seat, _n: http.get(
            f"/api/v1/consultations/{read_id}/messages",
            params={"limit": MESSAGES},
            headers=doctor.headers,
        ),
        "post": lambda http, _seat, n: http.post(
            f"/api/v1/consultations/{post_id}/messages",
            data={"body": f"Réponse {n}"},
            files={"files": ("compte-rendu.pdf", PDF, "application/pdf")},
            headers=patient.headers,
        ),
        "list": lambda http, _seat, _n: http.get(
            "/api/v1/consultations", params={"limit": 20}, headers=doctor.headers
        ),
    }


def _answered(route: str, response: Any) -> bool:
    if route == "post":
        return bool(response.status_code == 201 and len(response.json()["attachments"]) == 1)
    if response.status_code != 200:
        return False
    return len(response.json()["items"]) == (MESSAGES if route == "read" else 2)


def _most(counted: list[Trips]) -> Trips:
    return max(counted, key=lambda t: t.total)


@pytest.mark.parametrize("route", ["read", "post", "list"])
def test_each_route_sends_no_more_than_its_bound(chained_apart: Api, route: str) -> None:
    api = chained_apart
    sends = _sends(*_world(api))
    with Counter(api.store.engine).installed() as counter:
        counted = count_route(
            api.client,
            counter,
            sends[route],
            None,
            lambda response: _answered(route, response),
            warmup=2,
            repeat=3,
        )
    most = _most(counted)
    bound = BOUNDS[route][api.store.backend]
    assert most.pings == 0  # busy connections are not pinged on checkout
    assert most.total <= bound, f"{most.total} > {bound}:\n" + "\n".join(most.sql)


def test_a_consultation_and_its_patient_are_read_with_no_query_for_the_key(
    chained_apart: Api,
) -> None:
    """The patient's data-key record comes with the consultation: even with the vault's
    cache of unwrapped keys empty (a new process, an evicted key), opening the
    consultation and its patient's names sends no query for that patient's key (the
    practitioner's own names, shown too, are under a key of their own)."""
    api = chained_apart
    patient, doctor, read_id, _post_id = _world(api)
    assert patient.patient_id is not None
    asked: list[str] = []

    def key_queries(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "FROM data_keys" in statement:
            asked.extend(str(value).replace("-", "") for value in parameters)

    api.store.sessions.vault.forget_all()
    event.listen(api.store.engine, "before_cursor_execute", key_queries)
    try:
        response = api.client.get(f"/api/v1/consultations/{read_id}", headers=doctor.headers)
    finally:
        event.remove(api.store.engine, "before_cursor_execute", key_queries)
    assert response.status_code == 200, response.text
    assert response.json()["patient"]["family_name"]  # the patient's record was opened
    assert patient.patient_id.hex not in asked

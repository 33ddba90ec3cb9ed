"""Probing ids: another patient's consultation, message or attachment answers exactly
as an id that does not exist, on every route that takes one."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Store
from tests.consultations.helpers import Actor, Api, pdf_bytes, png_bytes, running_api


@pytest.fixture
def api(store: Store, tmp_path: Path) -> Iterator[Api]:
    # The guard locks a prober out after a few misses; its own tests show that. Here
    # every probe must be answered, so the limit is out of the way.
    with running_api(store, tmp_path, guard_enumeration_limit=10_000) as running:
        yield running


def someone_elses(api: Api) -> dict[str, str]:
    """The ids of a consultation of another patient, in progress, with files."""
    other = api.patient()
    gp = api.practitioner()
    consultation = api.open(other, files=[("analyse.pdf", pdf_bytes(), "application/pdf")])
    api.take(gp)
    reply = api.write(
        gp, consultation["id"], "Reçu.", files=[("schema.png", png_bytes(), "image/png")]
    )
    assert reply.status_code == 201
    return {
        "consultation": consultation["id"],
        "message": reply.json()["id"],
        "attachment": reply.json()["attachments"][0]["id"],
    }


def probes(ids: dict[str, str]) -> list[tuple[str, str, Any]]:
    c, m, a = ids["consultation"], ids["message"], ids["attachment"]
    return [
        ("GET", f"/api/v1/consultations/{c}", None),
        ("GET", f"/api/v1/consultations/{c}/messages", None),
        ("POST", f"/api/v1/consultations/{c}/messages", {"body": "coucou"}),
        ("POST", f"/api/v1/consultations/{c}/cancel", None),
        ("POST", f"/api/v1/consultations/{c}/close", {"report": "x", "acts": ["TCG"]}),
        ("POST", f"/api/v1/consultations/{c}/incidents", {"description": "panne"}),
        ("GET", f"/api/v1/messages/{m}", None),
        ("GET", f"/api/v1/attachments/{a}", None),
    ]


def answers(api: Api, actor: Actor, ids: dict[str, str]) -> list[tuple[int, bytes]]:
    return [
        (r.status_code, r.content)
        for r in (
            api.client.request(method, path, headers=actor.headers, json=body)
            for method, path, body in probes(ids)
        )
    ]


def test_another_patients_ids_answer_like_ids_that_do_not_exist(api: Api) -> None:
    theirs = someone_elses(api)
    random = {kind: str(uuid.uuid4()) for kind in theirs}
    prober = api.patient()
    api.open(prober)

    for_theirs = answers(api, prober, theirs)
    for_random = answers(api, prober, random)

    assert [status for status, _ in for_theirs] == [404] * len(for_theirs)
    assert for_theirs == for_random
    for _, body in for_theirs:
        assert theirs["consultation"].encode() not in body


def test_a_practitioner_out_of_care_sees_nothing_either(api: Api) -> None:
    theirs = someone_elses(api)
    random = {kind: str(uuid.uuid4()) for kind in theirs}
    stranger = api.practitioner(names=("Paul", "Martin"), rpps="10999999999")

    assert answers(api, stranger, theirs) == answers(api, stranger, random)
    assert {status for status, _ in answers(api, stranger, theirs)} == {404}

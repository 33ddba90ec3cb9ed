"""The benchmark's baseline serves Hippocrate's routes with Hippocrate's answer shapes.

The security tax (``bench.tax``) is a ratio only if both apps answer the same requests
with the same documents: the same paths, methods, status codes and response models
as ``hippocrate.consultations.api``, and answers the load generator accepts.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from bench import api, baseline, tax
from hippocrate.consultations import api as consultations_api
from hippocrate.db.engine import make_engine

ROUTES = (
    ("GET", "/consultations"),
    ("GET", "/consultations/{consultation_id}/messages"),
    ("POST", "/consultations/{consultation_id}/messages"),
)


def _routes(routes: list[object], prefix: str = "") -> dict[tuple[str, str], APIRoute]:
    found = {}
    for route in routes:
        if isinstance(route, APIRoute):
            for method in route.methods:
                found[method, route.path.removeprefix(prefix)] = route
    return found


def test_the_baseline_declares_the_same_routes_and_answer_models() -> None:
    ours = _routes(consultations_api.router.routes)
    theirs = _routes(baseline.router.routes, baseline.PREFIX)
    for key in ROUTES:
        assert theirs[key].response_model == ours[key].response_model, key
        assert theirs[key].status_code == ours[key].status_code, key


@pytest.fixture
def served(tmp_path: Path) -> tuple[TestClient, list[tax.Seat]]:
    url = f"sqlite:///{tmp_path / 'baseline.db'}"
    engine = make_engine(url)
    baseline.create_schema(engine)
    made = baseline.seed(engine, seats=2, messages=api.MESSAGES, listed=api.LISTED)
    engine.dispose()
    seats = [
        tax.Seat(
            {"Authorization": f"Bearer {s.practitioner}"},
            {"Authorization": f"Bearer {s.patient}"},
            str(s.read_id),
            str(s.post_id),
        )
        for s in made
    ]
    return TestClient(baseline.create_app(url, tmp_path / "blobs")), seats


@pytest.mark.parametrize("route", tax.ROUTES)
def test_each_route_answers_what_the_load_generator_expects(
    served: tuple[TestClient, list[tax.Seat]], route: str
) -> None:
    client, seats = served
    for seat in seats:
        response = tax.SENDS[route](client, seat, 1)
        assert tax.answered(route, response), response.text


def test_the_seeded_data_match_hippocrates(served: tuple[TestClient, list[tax.Seat]]) -> None:
    client, seats = served
    seat = seats[0]
    read = client.get(
        f"/api/v1/consultations/{seat.read_id}/messages", headers=seat.practitioner
    ).json()
    assert read["total"] == api.MESSAGES
    assert [m["author"] for m in read["items"][:2]] == ["patient", "practitioner"]
    listed = client.get("/api/v1/consultations", headers=seat.practitioner).json()
    assert listed["total"] == api.LISTED
    assert all(c["subject"] is None for c in listed["items"])  # as a practitioner's list
    mine = client.get("/api/v1/consultations", headers=seat.patient).json()
    assert mine["total"] == 2
    assert all(c["subject"] for c in mine["items"])


def test_a_message_posted_with_a_file_is_read_back_with_it(
    served: tuple[TestClient, list[tax.Seat]],
) -> None:
    client, seats = served
    seat = seats[1]
    posted = tax.SENDS["post"](client, seat, 7).json()
    assert posted["attachments"][0]["size"] == len(tax.ATTACHMENT)
    read = client.get(
        f"/api/v1/consultations/{seat.post_id}/messages", headers=seat.practitioner
    ).json()
    assert read["items"][-1]["id"] == posted["id"]
    assert read["items"][-1]["attachments"] == posted["attachments"]


def test_no_token_no_answer(served: tuple[TestClient, list[tax.Seat]]) -> None:
    client, _ = served
    assert client.get("/api/v1/consultations").status_code == 401

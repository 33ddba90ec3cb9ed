"""An incident's scope against scripted attacks whose victims are known, through the real
API: the guard's containment opens the incident, the scope computed from the trail names
exactly the patients whose data came back, counts the honeytoken met, and is the same
(and its signature valid) when computed again at the same head."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from hippocrate.breach import scope as scopes
from hippocrate.breach import service
from hippocrate.breach.models import Incident, IncidentOrigin
from hippocrate.guard.service import Guard
from hippocrate.identity.models import Role
from hippocrate.tags import Category
from tests.breach.attacks import stolen_practitioner_session
from tests.conftest import Store
from tests.guard.helpers import (
    audit_verified,
    guard_of,
    guarded_api,
    patients_in_care,
    sign_in,
    staff_member,
)
from tests.guard.test_redteam import plant_honeytokens, reads_of


def honeytoken_of(store: Store, guard: Guard) -> Callable[[uuid.UUID], bool]:
    def check(patient: uuid.UUID) -> bool:
        with store.sessions() as session:
            return guard.is_honeytoken(session, patient)

    return check


def test_the_scope_of_a_stolen_session_is_exactly_its_victims(store: Store, tmp_path: Path) -> None:
    with guarded_api(store, tmp_path) as api:

        def own_care(user: Any, cases: list[Any]) -> None:
            # The practitioner's own reads, the day before: care, not the incident.
            doctor = sign_in(api, user)
            for path in reads_of(cases[0]):
                assert api.client.get(path, headers=doctor.headers).status_code == 200

        theft = stolen_practitioner_session(api, 30, before=own_care)
        stolen_at, victims = theft.stolen_at, theft.victims
        guard = guard_of(api)
        assert 0 < len(victims) <= 20

        provider = api.store.sessions.vault.provider
        until = datetime.now(UTC) + timedelta(minutes=1)
        with api.store.sessions() as session:
            (incident,) = session.scalars(select(Incident)).all()
            assert incident.origin is IncidentOrigin.GUARD
            principals = [p.id for p in service.details_of(incident).nature.principals]
            assert principals == [theft.practitioner.account_id]
            computed = scopes.sign(
                scopes.of_principals(
                    session,
                    principals=principals,
                    since=stolen_at,
                    until=until,
                    now=api.clock.now,
                    is_honeytoken=honeytoken_of(api.store, guard),
                ),
                provider,
            )
        assert set(computed.patients) == victims
        for exposure in computed.patients.values():
            assert {Category.IDENTITY, Category.HEALTH} <= exposure.categories
        assert computed.honeytokens == 0
        document = computed.as_dict()
        assert scopes.check(document, provider.signing_public_key())

        # More happens on the platform; the scope at the same head is the same scope.
        other = sign_in(api, staff_member(api, Role.PRACTITIONER))
        patients_in_care(api, other, 2)
        with api.store.sessions() as session:
            again = scopes.sign(
                scopes.of_principals(
                    session,
                    principals=principals,
                    since=stolen_at,
                    until=until,
                    now=computed.computed_at,
                    is_honeytoken=honeytoken_of(api.store, guard),
                    head_seq=computed.head_seq,
                ),
                provider,
            )
        assert again.payload() == computed.payload()

        # Whoever edits the scope (drops a victim) breaks its signature.
        tampered = dict(document, patients=document["patients"][1:])
        assert not scopes.check(tampered, provider.signing_public_key())


def test_a_honeytoken_met_by_the_thief_is_counted_and_nobody_to_notify(
    sqlite_store: Store, tmp_path: Path
) -> None:
    with guarded_api(sqlite_store, tmp_path) as api:
        user = staff_member(api, Role.PRACTITIONER)
        cases = patients_in_care(api, sign_in(api, user), 12, minutes_between=4)
        api.clock.advance(hours=16)
        (honey,) = plant_honeytokens(api)
        api.clock.advance(hours=1)
        stolen_at = datetime.now(UTC)
        thief = sign_in(api, user)
        guard = guard_of(api)
        listing = api.client.get("/api/v1/consultations?limit=100", headers=thief.headers)
        read = []
        for item in listing.json()["items"]:
            opened = api.client.get(f"/api/v1/consultations/{item['id']}", headers=thief.headers)
            if opened.status_code != 200:
                break
            read.append(uuid.UUID(opened.json()["patient_id"]))
        assert guard.state.contained(thief.account_id) == "honeytoken"
        with api.store.sessions() as session:
            computed = scopes.of_principals(
                session,
                principals=[thief.account_id],
                since=stolen_at,
                until=datetime.now(UTC) + timedelta(minutes=1),
                now=api.clock.now,
                is_honeytoken=honeytoken_of(api.store, guard),
            )
        assert set(computed.patients) == set(read)
        assert honey not in computed.patients
        assert computed.honeytoken_containments == 1
        assert computed.counts()["patients"] == len(set(read)) < len(cases)


def test_the_scope_of_a_database_copy_says_what_protects_it(
    sqlite_store: Store, tmp_path: Path
) -> None:
    with guarded_api(sqlite_store, tmp_path) as api:
        gp = sign_in(api, staff_member(api, Role.PRACTITIONER))
        cases = patients_in_care(api, gp, 3)
        (honey,) = plant_honeytokens(api, 1)
        guard = guard_of(api)
        data_dir = api.settings.data_dir
        with api.store.sessions() as session:
            inside = scopes.keys_location(
                provider_kind="file", key_file=data_dir / "root.key", copied=[data_dir]
            )
            computed = scopes.of_database_copy(
                session,
                now=api.clock.now,
                is_honeytoken=honeytoken_of(api.store, guard),
                key_location=inside,
            )
    assert {c.patient_id for c in cases} <= set(computed.patients)
    assert honey not in computed.patients
    assert computed.honeytokens == 1
    for case in cases:
        assert Category.HEALTH in computed.patients[case.patient_id].categories
    protection = computed.protection
    assert protection["keys"]["could_have_left"] is True
    sealed = {(f["table"], f["field"]) for f in protection["sealed_fields"]}
    assert {("patients", "nir"), ("consultations", "subject"), ("messages", "body")} <= sealed
    assert sum(protection["root_key_versions"].values()) >= len(computed.patients)
    outside = scopes.keys_location(
        provider_kind="file", key_file=tmp_path / "elsewhere" / "root.key", copied=[data_dir]
    )
    assert outside["could_have_left"] is False
    assert (
        scopes.keys_location(provider_kind="pkcs11", key_file=None, copied=[data_dir])[
            "could_have_left"
        ]
        is False
    )


def test_a_scope_names_the_signed_checkpoint_of_the_trail_it_read(
    sqlite_store: Store, tmp_path: Path
) -> None:
    with guarded_api(sqlite_store, tmp_path) as api:
        gp = sign_in(api, staff_member(api, Role.PRACTITIONER))
        patients_in_care(api, gp, 2)
        checkpointed = audit_verified(api.store, api.settings)  # signs the head
        assert checkpointed.ok, checkpointed.problems
        guard = guard_of(api)
        with api.store.sessions() as session:
            computed = scopes.of_principals(
                session,
                principals=[gp.account_id],
                since=datetime(2020, 1, 1, tzinfo=UTC),
                until=None,
                now=api.clock.now,
                is_honeytoken=honeytoken_of(api.store, guard),
            )
        scopes.tie(computed, api.settings.checkpoint_files)
        assert computed.checkpoint is not None
        assert computed.checkpoint["seq"] <= computed.head_seq
        signed = scopes.sign(computed, api.store.sessions.vault.provider).as_dict()
        assert signed["checkpoint"] == computed.checkpoint
        assert scopes.check(signed, api.store.sessions.vault.provider.signing_public_key())

"""A copy of the database does not tell honeytokens from real patients.

The platform is built as the demo builds it (its seeding, through the real services),
with honeytokens planted among the patients as the seed command plants them. The copy
is taken when no case is open (the queue empty, nothing in progress: every case drawn
waiting or in progress was played to its close), because a honeytoken never has an
open case: a patient with one is real. docs/GUARD.md says what that share is and what
it gives a classifier (0.5 plus half the share of patients with a case open).

Then, without any key, every plaintext feature the copy offers is computed per patient,
from every table of the schema (reflected, so a column added later is in too): whether
it has an account, the rows of every table that point at it (directly, or through its
account, its consultations, its messages; audit events as subject and as actor), and
for each column of those rows the mean, minimum and maximum of numbers and instants
(chain positions and timestamps of its audit events included), the lengths of sealed
and other byte values, the counts of each value of a status-like column, the nulls.

A classifier that picks the best single feature and threshold on half the patients is
scored on the other half (balanced accuracy, 20 random halvings); the widest AUC of any
one feature is reported. Honeytokens made the old way (a bare patient row) are the
control: the same classifier finds them at once.
"""

from __future__ import annotations

import math
import random
import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, select
from sqlalchemy.engine import Engine

from hippocrate.audit.recorder import Actor, attach
from hippocrate.blobs import FileBlobStore
from hippocrate.consultations.models import Consultation, ConsultationStatus
from hippocrate.demo.seed import seed_demo
from hippocrate.guard.models import HoneytokenMarker
from hippocrate.guard.service import Guard
from hippocrate.guard.state import LocalState
from hippocrate.patients.service import create_patient
from hippocrate.patients.synthetic import SyntheticPatients
from hippocrate.tags import Purpose
from tests.conftest import Store
from tests.consultations.helpers import settings_for
from tests.identity.helpers import fast_password_hashing

REAL, HONEY, BARE = 90, 45, 15
SPLITS = 20
OPEN = (ConsultationStatus.REQUESTED, ConsultationStatus.IN_PROGRESS)
Features = dict[uuid.UUID, dict[str, float]]


def _no_check(_actor: Actor, _patient: uuid.UUID, _resource: str) -> None:
    return None


def build(store: Store, tmp_path: Path) -> tuple[set[uuid.UUID], set[uuid.UUID]]:
    """The platform; returns the honeytokens and the bare control patients (as the key
    holder knows them)."""
    settings = settings_for(tmp_path, store, canary_domain="canary.example.org")
    guard = Guard(settings, store.sessions.vault, LocalState())
    blobs = FileBlobStore(settings.blob_dir)
    with fast_password_hashing(), store.sessions.begin() as session:
        attach(session, Actor(role="operator", purpose=Purpose.DEMO_SEED), _no_check)
        report = seed_demo(
            session=session,
            settings=settings,
            blobs=blobs,
            count=REAL,
            now=datetime.now(UTC),
            seed=11,
            guard=guard,
            honeytokens=HONEY,
            open_cases=False,
        )
        real = {p.patient_id for p in report.patients}
        people = SyntheticPatients(12)
        bare = {create_patient(session=session, data=people.patient()).id for _ in range(BARE)}
    with store.sessions() as session:
        markers = set(session.scalars(select(HoneytokenMarker.digest)))
        every = set(session.scalars(select(Consultation.patient_id)))
        open_ = session.scalars(
            select(Consultation.id).where(
                Consultation.status.in_(
                    (ConsultationStatus.REQUESTED, ConsultationStatus.IN_PROGRESS)
                )
            )
        ).all()
    assert open_ == []  # the copy is taken once the queue is empty (module docstring)
    honey = {p for p in every if guard.marker(p) in markers}
    assert len(honey) == HONEY
    assert not honey & real
    return honey, bare


# -- what a copy says, per patient -------------------------------------------------------


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    return None


def _uid(value: Any) -> Any:
    """An id as the copy holds it (a UUID, or its hex text on SQLite)."""
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            return value
    return value


def copy_features(engine: Engine) -> Features:
    """Every plaintext feature of every patient, from a copy of every table."""
    metadata = MetaData()
    metadata.reflect(engine)
    tables = metadata.tables
    found: dict[uuid.UUID, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    counts: dict[uuid.UUID, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    with engine.connect() as connection:

        def owners(table: str, key: str = "id", column: str = "patient_id") -> dict[Any, Any]:
            t = tables[table]
            return {
                _uid(r[0]): _uid(r[1]) for r in connection.execute(select(t.c[key], t.c[column]))
            }

        patients = {_uid(r[0]) for r in connection.execute(select(tables["patients"].c.id))}
        links: dict[str, dict[Any, Any]] = {
            "patient_id": {p: p for p in patients},
            "account_id": owners("accounts"),
            "actor_account_id": owners("accounts"),
            "consultation_id": owners("consultations"),
            "message_id": owners("messages"),
        }
        for name, table in tables.items():
            if name in ("alembic_version", "guard_markers"):
                continue
            rows = [dict(r._mapping) for r in connection.execute(select(table))]
            if not rows:
                continue
            columns = list(rows[0])
            few = {
                c
                for c in columns
                if all(isinstance(r[c], str | None) for r in rows)
                and len({r[c] for r in rows}) <= 12
            }
            ways = [(c, links[c]) for c in columns if c in links]
            if name == "patients":
                ways = [("id", links["patient_id"])]
            for link, owner_of in ways:
                prefix = f"{name}.{link}"
                for row in rows:
                    owner = owner_of.get(_uid(row[link]))
                    if not isinstance(owner, uuid.UUID) or owner not in patients:
                        continue
                    counts[owner][f"{prefix}.rows"] += 1
                    for column in columns:
                        value = row[column]
                        key = f"{prefix}.{column}"
                        if value is None:
                            counts[owner][f"{key}.null"] += 1
                        elif column in few:
                            counts[owner][f"{key}={value}"] += 1
                        elif isinstance(value, bytes | memoryview | str):
                            found[owner][f"{key}.len"].append(float(len(value)))
                        elif (number := _number(value)) is not None:
                            found[owner][key].append(number)
    names_counted = {k for c in counts.values() for k in c}
    names_found = {k for f in found.values() for k in f}
    features: Features = {}
    for patient in patients:
        mine: dict[str, float] = {k: counts[patient].get(k, 0.0) for k in names_counted}
        for key in names_found:
            values = found[patient].get(key)
            for stat, pick in (("mean", _mean), ("min", min), ("max", max)):
                mine[f"{key}.{stat}"] = pick(values) if values else float("-inf")
        features[patient] = mine
    return features


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


# -- classifiers -----------------------------------------------------------------------


def auc(positive: list[float], negative: list[float]) -> float:
    """P(a positive scores above a negative), ties counting half (Mann-Whitney)."""
    wins = 0.0
    for p in positive:
        for n in negative:
            wins += 1.0 if p > n else 0.5 if p == n else 0.0
    return wins / (len(positive) * len(negative))


def _balanced(rows: Iterable[tuple[float, bool]], threshold: float, above: bool) -> float:
    tp = tn = pos = neg = 0
    for value, honey in rows:
        says_honey = (value > threshold) == above
        if honey:
            pos += 1
            tp += says_honey
        else:
            neg += 1
            tn += not says_honey
    return (tp / pos + tn / neg) / 2


def best_threshold(
    features: Features, labels: dict[uuid.UUID, bool], train: list[uuid.UUID]
) -> tuple[str, float, bool, float]:
    """The single feature, threshold and direction that best separate ``train``."""
    best = ("", 0.0, True, 0.0)
    for name in sorted(next(iter(features.values()))):
        rows = [(features[p][name], labels[p]) for p in train]
        values = sorted({v for v, _ in rows})
        cuts = [(a + b) / 2 if a != float("-inf") else b - 1 for a, b in pairwise(values)]
        for cut in cuts:
            for above in (True, False):
                score = _balanced(rows, cut, above)
                if score > best[3]:
                    best = (name, cut, above, score)
    return best


def held_out_accuracy(
    features: Features, honey: set[uuid.UUID], others: set[uuid.UUID]
) -> tuple[float, list[str]]:
    """Balanced accuracy on held-out halves of the best single-threshold classifier
    fitted on the other half, averaged over ``SPLITS`` halvings; and the features it
    picked."""
    labels = {p: p in honey for p in honey | others}
    rng = random.Random(2026)
    scores, picked = [], []
    for _ in range(SPLITS):
        train: list[uuid.UUID] = []
        test: list[uuid.UUID] = []
        for group in (sorted(honey), sorted(others)):
            shuffled = list(group)
            rng.shuffle(shuffled)
            train += shuffled[: len(shuffled) // 2]
            test += shuffled[len(shuffled) // 2 :]
        name, cut, above, _ = best_threshold({p: features[p] for p in train}, labels, train)
        picked.append(name)
        scores.append(_balanced([(features[p][name], labels[p]) for p in test], cut, above))
    return sum(scores) / len(scores), picked


def widest_auc(
    features: Features, honey: set[uuid.UUID], others: set[uuid.UUID]
) -> tuple[str, float]:
    """The one feature whose AUC is furthest from 0.5, and that AUC (folded above)."""

    def distance(name: str) -> float:
        honey_values = [features[p][name] for p in honey]
        other_values = [features[p][name] for p in others]
        return abs(auc(honey_values, other_values) - 0.5)

    widest = max(sorted(next(iter(features.values()))), key=distance)
    return widest, 0.5 + distance(widest)


def chance_bound(positives: int, negatives: int) -> float:
    """Chance plus three standard deviations of one held-out balanced accuracy (the
    worst case, rates of one half), for the held-out sizes."""
    variance = (0.25 / (positives // 2) + 0.25 / (negatives - negatives // 2)) / 4
    return 0.5 + 3 * math.sqrt(variance)


@pytest.mark.slow  # some 150 patients seeded through the services
def test_no_plaintext_feature_tells_honeytokens_from_patients(
    store: Store, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    honey, bare = build(store, tmp_path)
    features = copy_features(store.engine)
    real = set(features) - honey - bare
    assert len(real) == REAL
    assert len(next(iter(features.values()))) > 150  # the copy offers many features

    accuracy, picked = held_out_accuracy(features, honey, real)
    widest, widest_value = widest_auc(features, honey, real)
    bound = chance_bound(len(honey), len(real))
    # The control: honeytokens as they were planted before (a bare patient row).
    control, control_picked = held_out_accuracy(features, bare, real)

    request.node.user_properties.append(("accuracy", accuracy))
    print(
        f"\n[{store.backend}] held-out balanced accuracy {accuracy:.3f} (bound {bound:.3f}; "
        f"features picked: {sorted(set(picked))}); widest AUC {widest_value:.3f} ({widest}); "
        f"bare control {control:.3f} ({sorted(set(control_picked))})"
    )
    assert control > 0.95, "the copy must show the old, bare honeytokens"
    assert accuracy <= bound

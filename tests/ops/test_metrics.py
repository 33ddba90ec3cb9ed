"""Metrics: two real ``hippocrate serve`` processes on one data folder share one
metrics listener (HIPPOCRATE_METRICS_LISTEN); a patient works through the API the real
way (registration, sign-in, a consultation, refusals, a thief's walk over consultation
ids that the guard contains) and one scrape answers for both processes: every series
is there, the counts are the sum of both, and nothing personal is anywhere in it."""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hippocrate.config import Settings
from tests.cli.test_cli import HIPPOCRATE, Cli
from tests.cli.test_keys_processes import PASSWORD, Server, _link_token, free_port, serving
from tests.conftest import _fresh_postgres
from tests.consultations.helpers import QUESTIONNAIRE
from tests.identity.helpers import patient_data

ENUMERATION_LIMIT = 3
UUID_SHAPE = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}", re.I)

#: Every series an operator's alerts are written on (docs/DEPLOYMENT.md).
SERIES = (
    "hippocrate_http_requests_total",
    "hippocrate_http_request_duration_seconds_bucket",
    "hippocrate_http_refusals_total",
    "hippocrate_guard_decisions_total",
    "hippocrate_guard_containments_total",
    "hippocrate_sign_in_failures_total",
    "hippocrate_sign_in_throttled_total",
    "hippocrate_key_cache_lookups_total",
    "hippocrate_key_unwraps_total",
    "hippocrate_unwrap_budget_used",
    "hippocrate_unwrap_budget_limit",
    "hippocrate_db_connections_in_use",
    "hippocrate_db_pool_size",
    "hippocrate_audit_pending_events",
    "hippocrate_audit_chain_lag_seconds",
    "hippocrate_audit_checkpoint_age_seconds",
    "hippocrate_notices",
    "hippocrate_notices_delivered_total",
    "hippocrate_job_queue_pending",
)


def deployment_env() -> dict[str, str]:
    return {
        "HIPPOCRATE_METRICS_LISTEN": f"127.0.0.1:{free_port()}",
        "HIPPOCRATE_AUDIT_CHECKPOINT_SECONDS": "0",
        "HIPPOCRATE_GUARD_ENUMERATION_LIMIT": str(ENUMERATION_LIMIT),
        "HIPPOCRATE_LOGIN_FAILURES_PER_ACCOUNT": "2",
    }


@pytest.fixture(params=["sqlite", "postgresql"])
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Cli:
    env = deployment_env()
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_database")
        _fresh_postgres(url).dispose()
        env["HIPPOCRATE_DATABASE_URL"] = url
    deployment = Cli(tmp_path, env)
    deployment.ok("init")
    return deployment


@pytest.fixture
def two(cli: Cli) -> Iterator[tuple[Server, Server]]:
    with ExitStack() as stack:
        yield stack.enter_context(serving(cli)), stack.enter_context(serving(cli))


@pytest.fixture
def two_on_sqlite(tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    """Two processes of the embedded default (where the backend does not matter)."""
    deployment = Cli(tmp_path, deployment_env())
    deployment.ok("init")
    with ExitStack() as stack:
        yield stack.enter_context(serving(deployment)), stack.enter_context(serving(deployment))


def scrape(cli: Cli) -> str:
    answer = httpx.get(f"http://{cli.env['HIPPOCRATE_METRICS_LISTEN']}/metrics", timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return answer.text


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, frozenset(labels.items())), 0.0)


def test_one_scrape_sums_both_processes_and_holds_nothing_personal(
    cli: Cli, two: tuple[Server, Server]
) -> None:
    one, other = two
    personal: list[str] = []
    ids: list[str] = []

    # Registration at one process, sign-in at the other.
    data = patient_data(email=f"metrique-{uuid.uuid4().hex[:8]}@example.org").model_dump(
        mode="json"
    )
    personal += [str(v) for v in data.values() if isinstance(v, str) and len(v) >= 4]
    with one.http() as http:
        assert http.post("/auth/register", json={**data, "password": PASSWORD}).status_code == 202
        token = _link_token(Settings(data_dir=cli.data_dir).outbox_dir, data["email"])
        assert http.post("/auth/verify-email", json={"token": token}).status_code == 204
    with other.http() as http:
        wrong = http.post("/auth/login", json={"email": data["email"], "password": "not it at all"})
        assert wrong.status_code == 401
        login = http.post("/auth/login", json={"email": data["email"], "password": PASSWORD})
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['token']}"}
        me = http.get("/me", headers=headers).json()
        ids.append(me["id"])
        assert http.get("/patients/me", headers=headers).status_code == 200
        # A stranger's guesses at another address: failures, then throttled.
        stranger = {"email": "inconnue@example.org", "password": "guess-guess-guess"}
        codes = [http.post("/auth/login", json=stranger).status_code for _ in range(4)]
        assert codes[-1] == 429, codes
        personal.append("inconnue@example.org")

    subject = "Toux sèche depuis dix jours"
    with one.http() as http:
        opened = http.post(
            "/consultations",
            headers=headers,
            json={
                "specialty": "general-practice",
                "subject": subject,
                "description": "Elle revient surtout la nuit, sans fièvre.",
                "questionnaire": QUESTIONNAIRE,
            },
        )
        assert opened.status_code == 201, opened.text
        ids.append(opened.json()["id"])
        personal.append(subject)
        assert http.get("/patients/me").status_code == 401  # a refusal: no session
        # The stolen session walks consultation ids: refused, then contained.
        walk = [str(uuid.uuid4()) for _ in range(ENUMERATION_LIMIT + 3)]
        ids += walk
        answers = [http.get(f"/consultations/{i}", headers=headers).status_code for i in walk]
        assert answers[0] == 404
        assert answers[-1] in (401, 403, 423), answers

    # A method of the client's own making is no label.
    with httpx.Client(base_url=one.base) as http:
        http.request("MARGUERITE", "/api/v1/health/live")
    personal.append("MARGUERITE")

    # Liveness asked a known number of times at each process: the scrape sums them.
    for server, times in ((one, 3), (other, 4)):
        with httpx.Client(base_url=server.base) as http:
            for _ in range(times):
                assert http.get("/api/v1/health/live").status_code == 200
    cli.ok("audit", "checkpoint")

    # Whichever process answers the scrape, it answers for both.
    texts = [scrape(cli) for _ in range(4)]
    for text in texts:
        live = ("hippocrate_http_requests_total", "GET", "/api/v1/health/live", "200")
        assert value(text, live[0], method=live[1], route=live[2], status=live[3]) == 7
    text = texts[-1]
    for series in SERIES:
        assert re.search(rf"^{series}[{{ ]", text, re.M), f"{series} missing"

    # What the workload did, as the operator reads it.
    route = "/api/v1/consultations/{consultation_id}"
    assert value(text, "hippocrate_http_requests_total", method="GET", route=route, status="404")
    assert value(text, "hippocrate_http_refusals_total", kind="NotAuthenticated", status="401")
    assert value(text, "hippocrate_guard_containments_total", rule="enumeration") == 1
    assert value(text, "hippocrate_guard_decisions_total", decision="allowed", rule="none") >= 1
    assert value(text, "hippocrate_sign_in_failures_total", factor="signin") >= 3
    assert value(text, "hippocrate_sign_in_throttled_total", factor="signin") >= 1
    assert value(text, "hippocrate_key_cache_lookups_total", result="hit") >= 1
    assert value(text, "hippocrate_key_unwraps_total") >= 1  # the sign-in, at least
    assert value(text, "hippocrate_unwrap_budget_limit", budget="authenticated") == 600
    assert value(text, "hippocrate_db_pool_size") >= 0
    assert 0 <= value(text, "hippocrate_audit_checkpoint_age_seconds") < 120
    assert value(text, "hippocrate_audit_chain_lag_seconds") < 60

    # Nothing personal: no value typed, no id of the workload, nothing shaped as a UUID.
    lowered = text.lower()
    for found in personal + ids:
        assert found.lower() not in lowered, f"{found!r} is in the scrape"
        assert found.lower().replace("-", "") not in lowered
    assert not UUID_SHAPE.search(text), UUID_SHAPE.search(text)
    assert "@" not in text
    for (_, labels), _ in samples(text).items():
        for name, label in labels:
            if name == "route":
                assert label == "unmatched" or label.startswith("/"), label
                assert not re.search(r"/[0-9a-f-]{16,}", label), label


def test_the_listener_outlives_a_worker_and_keeps_its_counts(
    two_on_sqlite: tuple[Server, Server],
) -> None:
    one, other = two_on_sqlite
    cli = one.cli
    with httpx.Client(base_url=one.base) as http:
        for _ in range(5):
            assert http.get("/api/v1/health/live").status_code == 200
    assert one.process is not None
    one.process.terminate()
    one.process.wait(timeout=30)
    # The other process now answers every scrape; the stopped one's counts stay (a
    # sum never goes back because a worker stopped), its live gauges leave.
    for _ in range(3):
        text = scrape(cli)
        assert (
            value(
                text,
                "hippocrate_http_requests_total",
                method="GET",
                route="/api/v1/health/live",
                status="200",
            )
            == 5
        )
    assert httpx.get(f"{other.base}/api/v1/health/live").status_code == 200


def test_no_metrics_without_the_setting(tmp_path: Path) -> None:
    deployment = Cli(tmp_path, {"HIPPOCRATE_AUDIT_CHECKPOINT_SECONDS": "0"})
    deployment.ok("init")
    with serving(deployment) as server:
        assert httpx.get(f"{server.base}/api/v1/health/live").status_code == 200
        # Never on the app's own port, which the public reaches.
        assert httpx.get(f"{server.base}/metrics").status_code == 404
    assert not (deployment.data_dir / "metrics").exists()


CONFIGURE = """
import sys
from pathlib import Path
from hippocrate.config import Settings
from hippocrate.ops import metrics
metrics.configure(Settings(data_dir=Path(sys.argv[1]), metrics_listen="127.0.0.1:1"))
import os
print(os.getpid(), " ".join(sorted(p.name for p in Path(sys.argv[2]).iterdir())))
"""


def start_of_a_process(tmp_path: Path, directory: Path) -> tuple[int, set[str]]:
    """A real process turning metrics on over ``directory``: its pid, and the others'
    files left there once it has."""
    python = Path(HIPPOCRATE).parent / "python"
    done = subprocess.run(
        [str(python), "-c", CONFIGURE, str(tmp_path / "var"), str(directory)],
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    first, *names = done.stdout.split()
    pid = int(first)
    # Its own files (the gauges without labels are made at once) are not what was left.
    return pid, {n for n in names if n not in (".lock", f"{pid}.pid") and f"_{pid}." not in n}


def dead_pid() -> int:
    finished = subprocess.Popen(["true"])
    finished.wait()
    return finished.pid


def test_a_fresh_start_empties_the_directory(tmp_path: Path) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    dead = dead_pid()
    for name in (f"counter_{dead}.db", f"gauge_livesum_{dead}.db", f"{dead}.pid"):
        (directory / name).write_bytes(b"")
    _, left = start_of_a_process(tmp_path, directory)
    assert left == set()


def test_a_worker_started_beside_live_ones_keeps_the_dead_ones_counters(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    dead, live = dead_pid(), os.getpid()
    for name in (
        f"counter_{dead}.db",
        f"gauge_livesum_{dead}.db",
        f"{dead}.pid",
        f"counter_{live}.db",
        f"{live}.pid",
    ):
        (directory / name).write_bytes(b"")
    _, left = start_of_a_process(tmp_path, directory)
    # A live process's files are untouched; a dead one's counters stay in the sums
    # and its live gauges leave them.
    assert left == {f"counter_{dead}.db", f"counter_{live}.db", f"{live}.pid"}

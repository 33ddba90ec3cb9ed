"""Load that degrades, never breaks, against ``hippocrate serve`` in a process of its
own, with production argon2 parameters (64 MiB a hash) and the default pools.

What is asserted is what a client and an operator see: every answer is an accepted
registration or a refusal that says when to come back (503 or 429 with
``Retry-After``), never a 500; the server's peak memory stays far below what one hash
per parallel request would take; a 32 MiB body to the sign-in route is answered 413
before it is sent.
"""

from __future__ import annotations

import socket
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.cli.test_cli import Cli
from tests.cli.test_keys_processes import Server, serving
from tests.conftest import _fresh_postgres
from tests.identity.helpers import patient_data

PASSWORD = "velvet-otter-marches-north"
PARALLEL = 40
HASH_MIB = 64


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    deployment = Cli(tmp_path, {"HIPPOCRATE_AUDIT_CHECKPOINT_SECONDS": "0"})
    deployment.ok("init")
    return deployment


@pytest.fixture(params=["sqlite", "postgresql"])
def cli_on(request: pytest.FixtureRequest, tmp_path: Path) -> Cli:
    """A deployment on either backend."""
    env = {"HIPPOCRATE_AUDIT_CHECKPOINT_SECONDS": "0"}
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_database")
        _fresh_postgres(url).dispose()
        env["HIPPOCRATE_DATABASE_URL"] = url
    deployment = Cli(tmp_path, env)
    deployment.ok("init")
    return deployment


def _peak_rss_mib(server: Server) -> float:
    assert server.process is not None
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def _register(server: Server, n: int) -> httpx.Response:
    data = patient_data(email=f"load{n}@example.org").model_dump(mode="json")
    with httpx.Client(base_url=f"{server.base}/api/v1", timeout=120) as http:
        return http.post("/auth/register", json={**data, "password": PASSWORD})


def test_parallel_registrations_are_accepted_or_told_to_retry_never_500(cli_on: Cli) -> None:
    budgets = {
        "HIPPOCRATE_REGISTRATIONS_PER_CLIENT": "100000",
        "HIPPOCRATE_REGISTRATIONS_GLOBAL": "100000",
        "HIPPOCRATE_HASHING_CONCURRENCY": "2",
    }
    with serving(cli_on, **budgets) as server:
        before = _peak_rss_mib(server)
        with ThreadPoolExecutor(PARALLEL) as pool:
            answers = list(pool.map(lambda n: _register(server, n), range(PARALLEL)))
        peak = _peak_rss_mib(server)
    statuses = Counter(answer.status_code for answer in answers)
    assert statuses[500] == 0, statuses
    assert set(statuses) <= {202, 503}, statuses
    assert statuses[202] >= 1, statuses
    for answer in answers:
        if answer.status_code == 503:
            assert answer.headers["content-type"] == "application/problem+json"
            assert int(answer.headers["retry-after"]) >= 1
    # Two hashes at a time, not forty: far below 40 × 64 MiB (2.5 GiB before).
    assert peak - before < 8 * HASH_MIB, (before, peak, statuses)
    print(f"\n{PARALLEL} parallel registrations: {dict(statuses)}; peak RSS {peak:.0f} MiB")


def test_parallel_registrations_past_the_budget_get_429_with_retry_after(cli: Cli) -> None:
    with (
        serving(cli, HIPPOCRATE_REGISTRATIONS_PER_CLIENT="5") as server,
        ThreadPoolExecutor(PARALLEL) as pool,
    ):
        answers = list(pool.map(lambda n: _register(server, n), range(PARALLEL)))
    statuses = Counter(answer.status_code for answer in answers)
    assert statuses[500] == 0, statuses
    assert statuses[202] <= 5, statuses
    assert statuses[429] >= PARALLEL - 5 - statuses[503], statuses
    for answer in answers:
        if answer.status_code in (429, 503):
            assert int(answer.headers["retry-after"]) >= 1


def test_a_32_mib_body_to_login_is_answered_413_before_it_is_sent(cli: Cli) -> None:
    with serving(cli) as server:
        host, port = server.base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as connection:
            connection.sendall(
                b"POST /api/v1/auth/login HTTP/1.1\r\n"
                + f"Host: {host}\r\n".encode()
                + b"Content-Type: application/json\r\n"
                + f"Content-Length: {32 * 1024 * 1024}\r\n\r\n".encode()
                + b'{"email": "'
            )
            started = time.monotonic()
            answer = b""
            while b"\r\n\r\n" not in answer:
                chunk = connection.recv(65536)
                if not chunk:
                    break
                answer += chunk
            elapsed = time.monotonic() - started
        # The server is still well afterwards.
        assert httpx.get(f"{server.base}/api/v1/health", timeout=10).status_code == 200
    head = answer.split(b"\r\n\r\n", 1)[0].decode()
    assert head.startswith("HTTP/1.1 413"), head
    assert "application/problem+json" in head
    assert elapsed < 5

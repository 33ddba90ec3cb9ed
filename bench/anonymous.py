"""What an anonymous caller learns from timing: sign-in and password-reset requests for
known and unknown addresses, against the real app served by uvicorn in another process
(production argon2id parameters, SQLite, the key cache on as in production).

For each route the known and unknown requests are interleaved (known, unknown, known,
...) so that a slow-down of the machine hits both alike. The figures: the median of
each, and the accuracy of a one-request guess: a threshold at the midpoint of the two
medians, every request classified as known on the side of the slower median. 0.5 is
a coin toss; the goal is at most 0.55.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.api import SEEDER, _init, _secrets, _server, _settings
from hippocrate.identity import service as identity
from hippocrate.patients.synthetic import SyntheticPatients
from hippocrate.runtime import Runtime
from hippocrate.work import unit_of_work

ACCOUNTS = 20  # known patient accounts, asked about in turn
SIGN_INS = 40  # timed sign-in requests of each kind (argon2id: about a second each pair)
RESETS = 200  # timed reset requests of each kind
PAUSE = 0.05  # seconds between requests: what follows an answer has time to finish

#: Limits raised so that the benchmark measures the work, not the throttles' refusals.
UNTHROTTLED = {
    "HIPPOCRATE_RESETS_PER_CLIENT": "1000000",
    "HIPPOCRATE_RESETS_GLOBAL": "1000000",
    "HIPPOCRATE_LOGIN_FAILURES_PER_ACCOUNT": "1000000",
    "HIPPOCRATE_LOGIN_FAILURES_PER_CLIENT": "1000000",
}


@dataclass
class Route:
    name: str
    known: list[float] = field(default_factory=list)  # seconds
    unknown: list[float] = field(default_factory=list)
    statuses: set[tuple[int, int]] = field(default_factory=set)  # (known, unknown)

    def medians(self) -> tuple[float, float]:
        return statistics.median(self.known), statistics.median(self.unknown)

    def guess_accuracy(self) -> float:
        """Accuracy of telling known from unknown by one request's time."""
        known, unknown = self.medians()
        threshold = (known + unknown) / 2
        slower_is_known = known >= unknown
        right = sum((t > threshold) == slower_is_known for t in self.known)
        right += sum((t > threshold) != slower_is_known for t in self.unknown)
        return right / (len(self.known) + len(self.unknown))


@dataclass
class AnonymousResult:
    routes: list[Route]
    accounts: int


def _seed(settings: object, count: int) -> list[tuple[str, str]]:
    runtime = Runtime.open(settings)  # type: ignore[arg-type]
    generator = SyntheticPatients(2024)
    made = []
    try:
        for _ in range(count):
            with unit_of_work(runtime, SEEDER) as session:
                data = generator.patient(with_nir=False)
                password, _secret = _secrets()
                identity.create_patient_account(
                    session=session, data=data, password=password, now=datetime.now(UTC)
                )
                made.append((data.email, password))
        return made
    finally:
        runtime.close()


def _timed(client: httpx.Client, path: str, body: dict[str, str]) -> tuple[float, int]:
    started = time.perf_counter()
    response = client.post(path, json=body)
    elapsed = time.perf_counter() - started
    time.sleep(PAUSE)
    return elapsed, response.status_code


def _interleave(
    client: httpx.Client, route: Route, path: str, bodies: list[tuple[dict[str, str], ...]]
) -> None:
    for known_body, unknown_body in bodies:
        known, known_status = _timed(client, path, known_body)
        unknown, unknown_status = _timed(client, path, unknown_body)
        route.known.append(known)
        route.unknown.append(unknown)
        route.statuses.add((known_status, unknown_status))


def run() -> AnonymousResult:
    with tempfile.TemporaryDirectory(prefix="hippocrate-bench-anon-") as tmp:
        root = Path(tmp)
        settings = _settings(root / "var", f"sqlite:///{root / 'hippocrate.db'}", None)
        _init(settings)
        accounts = _seed(settings, ACCOUNTS)
        wrong = "not-the-password-" + uuid.uuid4().hex[:8]
        with (
            _server(settings, 1, root / "server.log", env=UNTHROTTLED) as base,
            httpx.Client(base_url=base, timeout=60) as client,
        ):
            sign_in, reset = Route("sign-in (wrong password)"), Route("reset request")
            unknown = [f"nobody.{n}.{uuid.uuid4().hex[:6]}@example.org" for n in range(ACCOUNTS)]
            # Warm up both paths (first requests load code and keys).
            _interleave(
                client,
                Route("warm-up"),
                "/api/v1/auth/login",
                [
                    (
                        {"email": accounts[0][0], "password": wrong},
                        {"email": unknown[0], "password": wrong},
                    )
                ],
            )
            _interleave(
                client,
                sign_in,
                "/api/v1/auth/login",
                [
                    (
                        {"email": accounts[n % ACCOUNTS][0], "password": wrong},
                        {"email": unknown[n % ACCOUNTS], "password": wrong},
                    )
                    for n in range(SIGN_INS)
                ],
            )
            _interleave(
                client,
                reset,
                "/api/v1/auth/password-reset",
                [
                    ({"email": accounts[n % ACCOUNTS][0]}, {"email": unknown[n % ACCOUNTS]})
                    for n in range(RESETS)
                ],
            )
        return AnonymousResult([sign_in, reset], ACCOUNTS)


def report(result: AnonymousResult) -> str:
    lines = [
        "## Anonymous paths: known and unknown addresses",
        "",
        f"{result.accounts} known patient accounts, unknown addresses alongside, requests "
        f"interleaved one by one with {PAUSE * 1000:.0f} ms between them, one uvicorn "
        "worker, production argon2id parameters, SQLite.",
        "",
        "| Route | Requests per kind | Status (known, unknown) | Median known (ms) "
        "| Median unknown (ms) | Ratio | One-request guess accuracy |",
        "|---|--:|---|--:|--:|--:|--:|",
    ]
    for route in result.routes:
        known, unknown = route.medians()
        statuses = ", ".join(f"{k}/{u}" for k, u in sorted(route.statuses))
        lines.append(
            f"| {route.name} | {len(route.known)} | {statuses} | {known * 1000:.1f} "
            f"| {unknown * 1000:.1f} | {known / unknown:.2f} | {route.guess_accuracy():.2f} |"
        )
    lines.append("")
    return "\n".join(lines)

"""What a page costs beside the API answer it shows: the same data read through the
same services, once as the API's JSON and once as the page's HTML (presenters, Jinja2,
the catalogue), for one patient's consultation with 20 messages and their list.

In process (``TestClient`` on the app, SQLite in a temporary folder), interleaved
(``bench.timing``): the difference is the page's own work, since both go through the
same unit of work, policy, trail and guard. ``python -m bench pages``.
"""

from __future__ import annotations

import re
import tempfile
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.api import _init, _settings
from bench.machine import describe
from bench.timing import Case, Timing, measure
from hippocrate.app import create_app
from hippocrate.identity import service as identity
from hippocrate.patients.synthetic import SyntheticPatients
from hippocrate.runtime import Runtime
from hippocrate.web import cookies, csrf

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

MESSAGES = 20
PASSWORD = "bench-pages-password-2026"
BASE = "https://bench.localhost"
TOKEN = re.compile(r'name="' + csrf.FIELD + r'" value="([^"]+)"')
QUESTIONNAIRE = {
    "q_symptoms_duration": "1_to_4_weeks",
    "q_current_treatments": "aucun",
    "q_allergies": "aucune",
    "q_pregnancy": "not_applicable",
}


@dataclass(frozen=True)
class PagesResult:
    timings: dict[str, Timing]
    sizes: dict[str, int]


def _post(client: Any, path: str, data: dict[str, str], form: str) -> Any:
    found = TOKEN.search(client.get(form).text)
    assert found is not None
    return client.post(path, data={csrf.FIELD: found.group(1), **data}, headers={"Origin": BASE})


def run(*, repeat: int = 7) -> PagesResult:
    with tempfile.TemporaryDirectory() as home:
        settings = _settings(Path(home) / "var", f"sqlite:///{home}/bench.db", None)
        _init(settings)
        runtime = Runtime.open(settings)
        try:
            data = SyntheticPatients(2026).patient(with_nir=True)
            from hippocrate.audit.recorder import Actor
            from hippocrate.tags import Purpose
            from hippocrate.work import unit_of_work

            with unit_of_work(runtime, Actor(role="operator", purpose=Purpose.DEMO_SEED)) as s:
                identity.create_patient_account(
                    session=s, data=data, password=PASSWORD, now=datetime.now(UTC)
                )
            app = create_app(runtime=runtime)
            with TestClient(app, base_url=BASE, follow_redirects=False) as page:
                signed = _post(
                    page, "/sign-in", {"email": data.email, "password": PASSWORD}, "/sign-in"
                )
                assert page.cookies.get(cookies.SESSION), signed.text[:300]
                opened = _post(
                    page,
                    "/patient/consultations/new",
                    {
                        "specialty": "dermatology",
                        "subject": "Plaques rouges",
                        "description": "Depuis une semaine.",
                        **QUESTIONNAIRE,
                    },
                    "/patient/consultations/new",
                )
                path = opened.headers["location"].split("?")[0]
                consultation = path.rsplit("/", 1)[1]
                for i in range(MESSAGES - 1):
                    _post(page, f"{path}/messages", {"body": f"Message {i}: " + "x" * 200}, path)
                token = (
                    TestClient(app)
                    .post("/api/v1/auth/login", json={"email": data.email, "password": PASSWORD})
                    .json()["token"]
                )
                bearer = {"Authorization": f"Bearer {token}"}
                api = TestClient(app)

                def api_read() -> None:
                    api.get(f"/api/v1/consultations/{consultation}", headers=bearer)
                    api.get(f"/api/v1/consultations/{consultation}/messages", headers=bearer)

                cases = [
                    Case("API: a consultation and its 20 messages (2 requests)", api_read, 1),
                    Case("page: the same consultation", lambda: page.get(path), 1),
                    Case(
                        "API: the list", lambda: api.get("/api/v1/consultations", headers=bearer), 1
                    ),
                    Case("page: the list", lambda: page.get("/patient"), 1),
                    Case(
                        "page: sign-in (no session)",
                        lambda: TestClient(app, base_url=BASE).get("/sign-in"),
                        1,
                    ),
                ]
                sizes = {
                    "page: the same consultation": len(page.get(path).content),
                    "page: the list": len(page.get("/patient").content),
                }
                return PagesResult(measure(cases, repeat=repeat), sizes)
        finally:
            runtime.close()


def report(result: PagesResult) -> str:
    lines = [
        "## Pages beside the API",
        "",
        describe(),
        "",
        "| | median ms | best ms | HTML bytes |",
        "|---|---:|---:|---:|",
    ]
    for name, timing in result.timings.items():
        size = result.sizes.get(name)
        lines.append(
            f"| {name} | {timing.median / 1e6:.2f} | {timing.best / 1e6:.2f} | "
            f"{size if size is not None else ''} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(report(run()))

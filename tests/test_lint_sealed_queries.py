"""The lint that keeps sealed models behind the access policy (scripts/lint_sealed_queries.py)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "lint_sealed_queries.py"
PACKAGE = ROOT / "src" / "hippocrate"


def run(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )


def plant(path: Path, source: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


VIOLATIONS = """\
    from sqlalchemy import select

    from hippocrate.consultations.models import Consultation
    from hippocrate.patients.models import Patient


    def show(session, patient_id):
        return session.get(Patient, patient_id)


    def subjects(session):
        return session.scalars(select(Consultation)).all()
"""


def test_the_tree_passes() -> None:
    result = run(PACKAGE)
    assert result.returncode == 0, result.stdout
    assert result.stdout == ""


def test_a_planted_violation_fails_with_its_lines(tmp_path: Path) -> None:
    module = plant(tmp_path / "hippocrate" / "reports" / "service.py", VIOLATIONS)
    result = run(tmp_path)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{module}:8: Patient is a sealed model")
    assert lines[1].startswith(f"{module}:12: Consultation is a sealed model")


def test_the_same_passes_inside_an_unsafe_function(tmp_path: Path) -> None:
    plant(
        tmp_path / "service.py",
        VIOLATIONS.replace("def show(", "def unsafe_show(").replace(
            "def subjects(", "def unsafe_subjects("
        ),
    )
    assert run(tmp_path).returncode == 0


def test_the_same_passes_inside_the_access_policy(tmp_path: Path) -> None:
    plant(tmp_path / "hippocrate" / "access" / "policy.py", VIOLATIONS)
    assert run(tmp_path).returncode == 0
    # Only the policy module: another file of the access package is checked.
    plant(tmp_path / "hippocrate" / "access" / "grants.py", VIOLATIONS)
    assert run(tmp_path).returncode == 1


def test_plaintext_columns_and_counts_pass(tmp_path: Path) -> None:
    plant(
        tmp_path / "service.py",
        """\
        from sqlalchemy import func, select, update

        from hippocrate.consultations.models import Consultation
        from hippocrate.patients.models import Patient


        def ids(session):
            session.scalars(select(Patient.id).where(Patient.status == "active"))
            session.scalar(select(func.count()).select_from(Patient))
            session.execute(select(Consultation.id, Consultation.status))
            session.execute(update(Patient).values(status="shredded"))
        """,
    )
    result = run(tmp_path)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize(
    "query",
    [
        "session.query(Patient).all()",
        "select(Patient.id, Patient)",
        "select(models.Patient)",
        "select(P)",
        "select(aliased(Patient))",
        "select(Other)",
        "select().select_from(Patient)",
        "select(Patient.id).with_only_columns(Patient)",
        "session.get_one(Account, account_id)",
        "select(Message).where(Message.id == message_id)",
        "session.get(Attachment, attachment_id)",
        "select(BreakGlassGrant)",
        "select(OutboundEmail)",
        "select(Practitioner)",
    ],
)
def test_every_way_of_loading_a_sealed_model_is_caught(tmp_path: Path, query: str) -> None:
    plant(
        tmp_path / "service.py",
        f"""\
        from sqlalchemy import select
        from sqlalchemy.orm import aliased

        from hippocrate.patients import models
        from hippocrate.patients.models import Patient as P

        Other = aliased(Patient)


        def load(session, account_id, message_id, attachment_id):
            return {query}
        """,
    )
    result = run(tmp_path)
    assert result.returncode == 1
    assert [line.split(": ")[0] for line in result.stdout.splitlines()] == [
        f"{tmp_path / 'service.py'}:11"
    ]


def test_a_model_deriving_from_a_sealed_one_is_sealed(tmp_path: Path) -> None:
    plant(
        tmp_path / "models.py",
        """\
        from hippocrate.db.sealed import SealedModel


        class Base(SealedModel):
            pass


        class Referral(Base):
            pass
        """,
    )
    plant(tmp_path / "service.py", "def load(session, i):\n    return session.get(Referral, i)\n")
    result = run(tmp_path)
    assert result.returncode == 1
    assert "service.py:2: Referral is a sealed model" in result.stdout

"""``hippocrate import`` as an operator runs it: a summary line, a report of the rejected
rows, exit 2 when some were rejected, one readable line for a file it cannot take, and
a second run that resumes instead of importing twice."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.cli.test_cli import Cli, assert_one_line_error
from tests.interop.test_import import csv_row, write_csv


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    cli = Cli(tmp_path)
    cli.ok("init")
    return cli


def patients_in(cli: Cli) -> int:
    with sqlite3.connect(cli.database) as connection:
        return int(connection.execute("SELECT count(*) FROM patients").fetchone()[0])


def test_import_reports_rejected_rows_and_resumes(cli: Cli, tmp_path: Path) -> None:
    before = patients_in(cli)  # init planted honeytokens
    source = write_csv(
        tmp_path / "patients.csv",
        [csv_row(1), csv_row(2, email="not an address"), csv_row(3)],
    )

    ran = cli.run("import", str(source))

    assert ran.code == 2, str(ran)
    assert "Traceback" not in ran.out + ran.err
    assert "2 patients imported, 1 rows rejected" in ran.out
    report = (tmp_path / "patients.csv.report.csv").read_text("utf-8").splitlines()
    assert report[0] == "row,field,reason"
    assert report[1].startswith("3,email,")
    after = patients_in(cli)
    assert after >= before + 2

    again = cli.run("import", str(source))
    assert again.code == 0, str(again)
    assert "0 patients imported, 0 rows rejected (resumed after row 3)" in again.out
    assert patients_in(cli) == after


def test_a_file_import_cannot_take_is_one_readable_line(cli: Cli, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("prenom,nom\nLucie,Martin\n", "utf-8")
    assert_one_line_error(cli.run("import", str(wrong)), "lacks the columns")
    assert_one_line_error(cli.run("import", str(tmp_path / "absent.csv")), "no such file")
    odd = tmp_path / "patients.xlsx"
    odd.write_bytes(b"PK")
    assert_one_line_error(cli.run("import", str(odd)), "--format")


def test_a_large_import_tops_the_honeytokens_up(cli: Cli, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "many.csv", [csv_row(i) for i in range(1, 91)])

    out = cli.ok("import", str(source))

    assert "90 patients imported, 0 rows rejected" in out
    # 3 honeytokens from init + 90 patients: one honeytoken per 20 wants 4.
    assert "1 honeytoken patients planted among them" in out
    with sqlite3.connect(cli.database) as connection:
        markers = connection.execute("SELECT count(*) FROM guard_markers").fetchone()[0]
    assert markers == 4


def test_several_workers_need_postgresql_and_invitations_wait_for_the_worker(
    cli: Cli, tmp_path: Path
) -> None:
    source = write_csv(tmp_path / "two.csv", [csv_row(1), csv_row(2)])
    before = patients_in(cli)
    assert_one_line_error(cli.run("import", str(source), "--workers", "2"), "PostgreSQL")
    assert patients_in(cli) == before  # the refusal imported nothing

    cli.ok("import", str(source))
    with sqlite3.connect(cli.database) as connection:
        queued = connection.execute(
            "SELECT count(*) FROM outbound_emails WHERE template = 'invitation' AND sent_at IS NULL"
        ).fetchone()[0]
    assert queued == 2

    cli.ok("audit", "checkpoint")
    cli.ok("audit", "verify")  # the trail of the import verifies as the operator checks it

    out = cli.ok("import", "--send-invitations")
    assert "2 invitations sent" in out
    assert "0 invitations sent" in cli.ok("import", "--send-invitations")
    with sqlite3.connect(cli.database) as connection:
        sent = connection.execute(
            "SELECT count(*) FROM outbound_emails"
            " WHERE template = 'invitation' AND sent_at IS NOT NULL"
        ).fetchone()[0]
    assert sent == 2

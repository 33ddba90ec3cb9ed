"""``hippocrate documents verify`` as an operator runs it: one line, exit 3 for a
document this platform did not issue, one readable error line for bad usage."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_cli import Cli, assert_one_line_error


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    cli = Cli(tmp_path)
    out = cli.ok("init")
    assert "document signing key created" in out
    return cli


def test_documents_not_issued_here_are_said_so(cli: Cli, tmp_path: Path) -> None:
    foreign = tmp_path / "ordonnance.pdf"
    foreign.write_bytes(b"%PDF-1.4\n% not signed by anyone\n")

    by_file = cli.run("documents", "verify", str(foreign))
    by_code = cli.run("documents", "verify", "--code", "ABCD-EFGH-JKMN")

    for ran in (by_file, by_code):
        assert ran.code == 3, str(ran)
        assert ran.out.startswith("NOT genuine: "), str(ran)
        assert "Traceback" not in ran.out + ran.err
    assert "no signature" in by_file.out
    assert "no document with this code" in by_code.out


def test_bad_usage_is_one_readable_line(cli: Cli, tmp_path: Path) -> None:
    assert_one_line_error(cli.run("documents", "verify"), "--code")
    assert_one_line_error(
        cli.run("documents", "verify", str(tmp_path / "absent.pdf")), "cannot read"
    )


def test_init_keeps_the_document_signing_key(cli: Cli) -> None:
    key = cli.data_dir / "document-signing.key"
    before = key.read_bytes()
    again = cli.ok("init")
    assert "document signing key created" not in again
    assert key.read_bytes() == before

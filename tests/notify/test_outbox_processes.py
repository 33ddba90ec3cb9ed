"""The outbox is for development only: ``hippocrate serve`` without SMTP says so on
stderr, and the messages (with their live links) are written outside the data folder,
so that a copy of that folder carries no message and no link that opens an account.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from hippocrate.config import Settings
from tests.cli.test_cli import Cli
from tests.cli.test_keys_processes import PASSWORD, _link_token, serving
from tests.identity.helpers import patient_data
from tests.plaintext import read_tree


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    deployment = Cli(tmp_path, {"HIPPOCRATE_AUDIT_CHECKPOINT_SECONDS": "0"})
    deployment.ok("init")
    return deployment


def test_a_copy_of_the_data_folder_holds_no_outbox_message(cli: Cli, tmp_path: Path) -> None:
    data = patient_data(email="outbox.owner@example.org").model_dump(mode="json")
    with serving(cli) as server, server.http() as http:
        answer = http.post("/auth/register", json={**data, "password": PASSWORD})
        assert answer.status_code == 202, answer.text
        reset = http.post("/auth/password-reset", json={"email": data["email"]})
        assert reset.status_code == 202, reset.text
    outbox = Settings(data_dir=cli.data_dir).outbox_dir
    assert outbox.resolve() == (cli.home / "var-outbox").resolve()
    token = _link_token(outbox, data["email"])  # the message was written, with its link

    copy = tmp_path / "stolen"
    shutil.copytree(cli.data_dir, copy)
    assert list(copy.rglob("*.eml")) == []
    stolen = read_tree(copy)
    assert token.encode() not in stolen
    assert data["email"].encode() not in stolen
    assert b"token=" not in stolen


def test_serve_without_smtp_warns_once_on_stderr_where_the_outbox_is(cli: Cli) -> None:
    with serving(cli):
        pass
    log = (cli.home / "server.log").read_text()
    warnings = [line for line in log.splitlines() if line.startswith("hippocrate: warning:")]
    assert len(warnings) == 1, log
    outbox = Settings(data_dir=cli.data_dir).outbox_dir.resolve()
    assert re.search(r"not delivered", warnings[0])
    assert str(outbox) in warnings[0]
    assert "development only" in warnings[0]


def test_the_outbox_cannot_be_put_inside_the_data_folder(cli: Cli) -> None:
    ran = cli.run("serve", HIPPOCRATE_OUTBOX_DIR=str(cli.data_dir / "outbox"))
    assert ran.code != 0
    assert "outside the data folder" in ran.err
    assert "Traceback" not in ran.err

"""Progress of long commands: a bar with the rate and the time left in a terminal, plain
periodic lines when piped, a summary line at the end; and Ctrl-C (SIGINT, sent to a
real process) stops a command cleanly: exit status 130, one line saying what was done
and how to resume, nothing half-written, and running it again completes."""

from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
import typer
from rich.console import Console
from sqlalchemy import func, insert, select, update

from hippocrate.audit.chain import GENESIS
from hippocrate.audit.chainer import chain_rows
from hippocrate.audit.models import AuditEvent, AuditHead
from hippocrate.audit.service import PendingEvent, stored
from hippocrate.cli.progress import INTERRUPTED, Progress
from hippocrate.config import Settings
from hippocrate.identity.models import Account
from hippocrate.keyring.models import DataKeyRecord, RootRotation
from hippocrate.patients.models import Patient
from tests.audit.helpers import Deployment, assert_refused, rewrite_history
from tests.cli.test_cli import Cli
from tests.conftest import Store
from tests.keyring.test_rotation import assert_all_readable, make_patients
from tests.keyring.test_rotation_crash import rotate_command

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_in_a_terminal_a_bar_with_the_rate_and_the_time_left() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    with Progress("keys rotate", 40, unit="data keys", console=console) as bar:
        assert bar.terminal
        for _ in range(40):
            time.sleep(0.01)
            bar.advance(1)
    drawn = ANSI.sub("", out.getvalue())
    assert "━" in drawn  # the bar
    assert "/40 data keys" in drawn
    assert re.search(r"\d+\.\d/s", drawn)  # the rate
    assert re.search(r"\d:\d\d:\d\d", drawn)  # the time left
    assert drawn.rstrip().splitlines()[-1].startswith("keys rotate: 40 data keys in ")


def test_piped_a_plain_line_every_tenth_or_every_five_seconds() -> None:
    out, clock = io.StringIO(), Clock()
    with Progress("seed", 100, unit="accounts", stream=out, clock=clock) as bar:
        assert not bar.terminal
        for _ in range(100):
            clock.now += 0.125
            bar.advance(1)
    lines = out.getvalue().splitlines()
    assert len(lines) == 11  # 10 %, 20 %, ... 100 %, then the summary
    assert lines[0] == "seed: 10/100 accounts (10%), 8.0/s, about 11 s left"
    assert lines[-2].startswith("seed: 100/100 accounts (100%)")
    assert lines[-1] == "seed: 100 accounts in 12 s (8.0/s)"

    out, clock = io.StringIO(), Clock()
    with Progress("keys rotate-patient", 20, unit="rows", stream=out, clock=clock) as bar:
        for _ in range(20):
            clock.now += 0.01  # done in a moment: no line but the summary
            bar.advance(1)
    assert out.getvalue().splitlines() == ["keys rotate-patient: 20 rows in 0.2 s (100.0/s)"]

    out, clock = io.StringIO(), Clock()
    with Progress("import", None, unit="rows", stream=out, clock=clock) as bar:
        for _ in range(3):
            clock.now += 6  # no total: a line every five seconds
            bar.advance(2)
    assert out.getvalue().splitlines() == [
        "import: 2 rows, 0.3/s",
        "import: 4 rows, 0.3/s",
        "import: 6 rows, 0.3/s",
        "import: 6 rows in 18 s (0.3/s)",
    ]


def test_interrupted_one_line_and_exit_130() -> None:
    out = io.StringIO()

    def work() -> None:
        with Progress(
            "keys rotate",
            10,
            unit="data keys",
            stream=out,
            interrupted=lambda done: f"{done} committed; run it again",
        ) as bar:
            bar.advance(3)
            raise KeyboardInterrupt

    with pytest.raises(typer.Exit) as stopped:
        work()
    assert stopped.value.exit_code == INTERRUPTED == 130
    assert out.getvalue().splitlines()[-1] == (
        "hippocrate: interrupted: keys rotate: 3 committed; run it again"
    )


# -- real processes ----------------------------------------------------------------------------


def _wait_for_line(process: subprocess.Popen[str], prefix: str, timeout: float = 120) -> list[str]:
    """Read stderr until a line starts with ``prefix``; the lines read."""
    assert process.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        seen.append(line.rstrip("\n"))
        if line.startswith(prefix):
            return seen
    pytest.fail(f"no line starting with {prefix!r} on stderr: {seen}")


def test_a_piped_rotation_done_in_a_moment_prints_its_summary_alone(sqlite_store: Store) -> None:
    made = make_patients(sqlite_store, 30)
    command, env = rotate_command(sqlite_store)
    command[-1] = "3"  # batch size: ten batches
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    # Done in a moment: the summary line alone, without a terminal's codes.
    [line] = result.stderr.splitlines()
    assert re.fullmatch(r"keys rotate: 30 data keys in \d+\.\d s \([\d.]+/s\)", line)
    assert "\x1b" not in result.stderr
    assert "rotation to root key version 2 finished: 30 data keys rewrapped" in result.stdout
    assert_all_readable(sqlite_store, made)


def test_in_a_real_terminal_the_rotation_draws_a_bar(sqlite_store: Store) -> None:
    """stderr a pseudo-terminal: rich draws the bar (terminal codes), then the summary."""
    make_patients(sqlite_store, 300)
    command, env = rotate_command(sqlite_store)
    command[-1] = "1"
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    process = subprocess.Popen(
        command, env={**env, "TERM": "xterm"}, stdout=subprocess.DEVNULL, stderr=slave
    )
    os.close(slave)
    drawn = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the terminal closed: the command ended
            break
        if not chunk:
            break
        drawn += chunk
    os.close(master)
    assert process.wait(timeout=60) == 0
    text = drawn.decode("utf-8", "replace")
    assert "\x1b[" in text  # a terminal's codes: the bar was drawn
    plain = ANSI.sub("", text)
    assert "━" in plain
    assert "/300 data keys" in plain
    assert re.search(r"keys rotate: 300 data keys in [\d.]+ s", plain)


def test_sigint_stops_a_rotation_between_batches_and_a_rerun_finishes(
    sqlite_store: Store,
) -> None:
    made = make_patients(sqlite_store, 1500)
    command, env = rotate_command(sqlite_store)
    command[-1] = "7"
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    [*_, line] = _wait_for_line(process, "keys rotate: ")  # a tenth done, or 5 s
    process.send_signal(signal.SIGINT)
    assert re.fullmatch(
        r"keys rotate: \d+/1500 data keys \(\d+%\), [\d.]+/s, about .+ left", line
    ), line
    out, err = process.communicate(timeout=60)

    assert process.returncode == 130, err
    [said] = [line for line in err.splitlines() if line.startswith("hippocrate:")]
    found = re.fullmatch(
        r"hippocrate: interrupted: keys rotate: (\d+) data keys rewrapped and committed in "
        r"whole batches, the batch under way rolled back; run 'hippocrate keys rotate' "
        r"again to finish the rotation",
        said,
    )
    assert found is not None, said
    assert "Traceback" not in err
    assert "finished" not in out
    with sqlite_store.sessions() as session:
        rotation = session.scalars(select(RootRotation)).one()
        moved = session.scalar(
            select(func.count()).select_from(DataKeyRecord).where(DataKeyRecord.root_version == 2)
        )
    # Nothing half-written: the committed batches are whole, the rotation knows them.
    assert rotation.finished_at is None
    assert moved == rotation.rewrapped
    assert moved % 7 == 0
    assert 0 < moved < 1500
    assert int(found.group(1)) <= moved <= int(found.group(1)) + 7
    assert_all_readable(sqlite_store, made)

    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert (
        f"rotation to root key version 2 resumed and finished: {1500 - moved} data keys"
        in result.stdout
    )
    assert_all_readable(sqlite_store, made)


def _count(cli: Cli, model: type) -> int:
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{cli.database}")
    try:
        with engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(model)).scalar() or 0)
    finally:
        engine.dispose()


def _files(cli: Cli) -> list[Path]:
    blobs = Settings(data_dir=cli.data_dir).blob_dir
    return sorted(p for p in blobs.rglob("*") if p.is_file()) if blobs.exists() else []


@pytest.mark.slow
def test_sigint_stops_a_seed_with_nothing_written_and_a_rerun_completes(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    cli.ok("init")
    before = (_count(cli, Patient), _count(cli, Account))  # init's honeytokens
    files_before = _files(cli)
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("HIPPOCRATE_")}
    env = {**inherited, "HIPPOCRATE_DATA_DIR": str(cli.data_dir)}
    command = [str(Path(sys.executable).parent / "hippocrate"), "seed", "--patients", "10"]
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _wait_for_line(process, "seed: ")
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)

    assert process.returncode == 130, err
    lines = [line for line in err.splitlines() if line.startswith("hippocrate:")]
    assert len(lines) == 1, err
    assert re.fullmatch(
        r"hippocrate: interrupted: seed: \d+ accounts made, all rolled back \(the demo is "
        r"seeded in one unit of work\): nothing was written; run the same command again",
        lines[0],
    ), lines
    assert "Traceback" not in err
    assert out == ""
    assert (_count(cli, Patient), _count(cli, Account)) == before
    assert not (cli.data_dir / "demo-credentials.json").exists()
    assert _files(cli) == files_before  # the attachments written meanwhile were removed

    again = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, check=False, timeout=300
    )
    assert again.returncode == 0, again.stderr
    assert "10 patients created" in again.stdout
    assert again.stderr.splitlines()[-1].startswith("seed: ")  # the summary line
    credentials = json.loads((cli.data_dir / "demo-credentials.json").read_text())
    assert len(credentials["patients"]) == 10


# -- audit verify ----------------------------------------------------------------------


def _deployment(store: Store, key_file: Path, tmp_path: Path) -> Deployment:
    home = tmp_path / "deployment"
    home.mkdir()
    return Deployment(store, home, key_file)


def test_a_verified_trail_ends_with_the_summary_and_a_tampered_one_with_its_error_alone(
    sqlite_store: Store, key_file: Path, tmp_path: Path
) -> None:
    deployment = _deployment(sqlite_store, key_file, tmp_path)
    deployment.working_day()
    ran = deployment.run("audit", "verify")
    assert ran.code == 0, str(ran)
    assert "audit trail intact: 50 events" in ran.out
    [line] = ran.err.splitlines()
    assert re.fullmatch(r"audit verify: 50 events in \d+\.\d s \([\d.]+/s\)", line), line

    rewrite_history(deployment.store, seq=12)
    deployment.checkpoint_file.unlink()
    assert_refused(deployment.run("audit", "verify"))  # stderr: the one error line


def _long_trail(store: Store, events: int, *, every: int) -> None:
    """``events`` chained events written straight into the chain (linked as the chainer
    links them). One in ``every`` names a resource beyond ASCII: the fast walk leaves
    such rows to the reference encoding, one query each, so that the walk lasts a few
    seconds."""
    seq, previous, at = 0, GENESIS, datetime.now(UTC)
    with store.sessions.begin() as session:
        for start in range(0, events, 10_000):
            batch = [
                SimpleNamespace(
                    **stored(
                        PendingEvent(
                            action="consultation:message:read",
                            actor_role="practitioner",
                            outcome="allowed",
                            at=at,
                            actor_account_id=uuid.UUID(int=n % 50),
                            patient_id=uuid.UUID(int=10_000 + n % 5_000),
                            resources=(f"message:réf-{n}" if n % every == 0 else f"m:{n}",),
                            categories=("health",),
                            request_id=f"{n:032x}",
                        )
                    )
                )
                for n in range(start, min(start + 10_000, events))
            ]
            rows, seq, previous = chain_rows(batch, after_seq=seq, after_hash=previous)
            session.execute(insert(AuditEvent), rows)
        session.execute(update(AuditHead).values(seq=seq, hash=previous))


def _processes_with(marker: str) -> list[int]:
    """The processes whose environment holds ``marker`` (a test's own data folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # ended meanwhile, or not ours
            continue
        if marker.encode() in environ:
            found.append(int(entry.name))
    return found


@pytest.mark.slow
@pytest.mark.parametrize(
    ("workers", "events", "every"),
    [("1", 40_000, 5), ("2", 150_000, 15)],  # in parallel: three stretches (50,000 at least)
)
def test_sigint_stops_a_verification_and_its_workers_at_once(
    sqlite_store: Store, key_file: Path, tmp_path: Path, workers: str, events: int, every: int
) -> None:
    """Ctrl-C during a long walk, alone or with worker processes: exit 130, one line
    saying what was walked and to run it again, no traceback from the command or its
    workers, no verdict, and no worker left running."""
    deployment = _deployment(sqlite_store, key_file, tmp_path)
    _long_trail(deployment.store, events, every=every)
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("HIPPOCRATE_")}
    env = {**inherited, "HIPPOCRATE_DATA_DIR": str(deployment.data_dir), **deployment.cli().env}
    command = [str(Path(sys.executable).parent / "hippocrate"), "audit", "verify"]
    process = subprocess.Popen(
        [*command, "--workers", workers],
        cwd=deployment.home,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    [*_, line] = _wait_for_line(process, "audit verify: ")
    assert re.fullmatch(
        rf"audit verify: \d+/{events} events \(\d+%\), [\d.]+/s, about .+ left", line
    ), line
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)

    assert process.returncode == 130, err
    assert "Traceback" not in err
    [said] = [line for line in err.splitlines() if line.startswith("hippocrate:")]
    assert re.fullmatch(
        r"hippocrate: interrupted: audit verify: \d+ events walked, nothing changed; run "
        r"'hippocrate audit verify' again",
        said,
    ), said
    assert "audit trail" not in out
    deadline = time.monotonic() + 10
    while _processes_with(str(deployment.data_dir)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_with(str(deployment.data_dir)) == []

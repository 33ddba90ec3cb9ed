"""The ``hippocrate`` command line, driven as a user drives it.

Every command runs the installed console script in a subprocess, from a folder of the
test's own, with ``HIPPOCRATE_DATA_DIR`` pointing inside it and no other ``HIPPOCRATE_``
variable inherited. What is asserted is what a user sees: the output, the exit code,
the files left behind, and that a failure is one line on stderr, never a traceback.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from hippocrate.db.engine import make_engine, unsafe_unaudited_sessions
from hippocrate.keyring.models import DataKeyRecord, KeyState
from hippocrate.keyring.service import KEYRING
from hippocrate.patients.models import Patient
from hippocrate.patients.service import unsafe_get_patient
from hippocrate.vault import KeyDestroyed, Vault, peek_key_version
from hippocrate.vault.fields import HEADER_BYTES, NONCE_BYTES
from hippocrate.vault.providers.file import FileKeyProvider
from tests.softhsm import make_token, require_softhsm, unique_label

HIPPOCRATE = Path(sys.executable).parent / "hippocrate"
SEALED_COLUMNS = (
    "given_names_sealed",
    "family_name_sealed",
    "birth_date_sealed",
    "sex_sealed",
    "email_sealed",
    "phone_sealed",
    "address_sealed",
    "nir_sealed",
)

#: Reading a record from the command line is a break-glass with a stated reason.
SHOW_REASON = ("--reason", "support ticket 4312: patient asked")


# -- running the command ------------------------------------------------------------


@dataclass(frozen=True)
class Ran:
    args: tuple[str, ...]
    code: int
    out: str
    err: str

    def __str__(self) -> str:
        return (
            f"$ hippocrate {' '.join(self.args)}\n"
            f"exit code {self.code}\nstdout: {self.out!r}\nstderr: {self.err!r}"
        )


@dataclass
class Cli:
    """The command line with a data folder of its own under ``home``."""

    home: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        return self.home / "var"

    @property
    def key_file(self) -> Path:
        return self.data_dir / "root.key"

    @property
    def database(self) -> Path:
        return self.data_dir / "hippocrate.db"

    def run(self, *args: str, **env: str) -> Ran:
        inherited = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith("HIPPOCRATE_") and name != "SOFTHSM2_CONF"
        }
        completed = subprocess.run(
            [str(HIPPOCRATE), *args],
            cwd=self.home,
            env={**inherited, "HIPPOCRATE_DATA_DIR": str(self.data_dir), **self.env, **env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        return Ran(args, completed.returncode, completed.stdout, completed.stderr)

    def ok(self, *args: str, **env: str) -> str:
        """Run a command that must succeed; its standard output."""
        ran = self.run(*args, **env)
        assert ran.code == 0, str(ran)
        assert "Traceback" not in ran.out + ran.err, str(ran)
        return ran.out


def assert_one_line_error(ran: Ran, *fragments: str) -> str:
    """The command failed with exit code 1 and one line ``hippocrate: error: ...``."""
    assert ran.code == 1, str(ran)
    assert "Traceback" not in ran.out + ran.err, str(ran)
    lines = ran.err.splitlines()
    assert len(lines) == 1, str(ran)
    assert lines[0].startswith("hippocrate: error: "), str(ran)
    for fragment in fragments:
        assert fragment in lines[0], str(ran)
    return lines[0]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- reading what the command left, with the Python API ----------------------------------


@contextmanager
def reader(cli: Cli) -> Iterator[Session]:
    """A session on the CLI's database, with a vault opened on its key file."""
    vault = Vault(FileKeyProvider(cli.key_file))
    engine = make_engine(f"sqlite:///{cli.database}")
    try:
        with unsafe_unaudited_sessions(
            engine, vault, KEYRING, why="tests of the layers below the entry points"
        )() as session:
            yield session
    finally:
        engine.dispose()
        vault.close()


def data_keys(cli: Cli, owner: uuid.UUID) -> list[tuple[int, KeyState, bytes | None]]:
    """The stored data key versions of ``owner``: (version, state, wrapped bytes)."""
    engine = make_engine(f"sqlite:///{cli.database}")
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(DataKeyRecord.version, DataKeyRecord.state, DataKeyRecord.wrapped)
                .where(DataKeyRecord.owner_id == owner)
                .order_by(DataKeyRecord.version)
            ).all()
    finally:
        engine.dispose()
    return [(version, state, wrapped) for version, state, wrapped in rows]


def patient_row(cli: Cli, patient_id: uuid.UUID) -> tuple[Any, ...]:
    """Every stored column of one patient, as raw as SQLite holds them."""
    with sqlite3.connect(cli.database) as connection:
        rows = connection.execute(
            "SELECT * FROM patients WHERE id = ?", (patient_id.hex,)
        ).fetchall()
    connection.close()
    assert len(rows) == 1
    return tuple(rows[0])


# -- a seeded data folder, made once and copied for each test -----------------------------


@dataclass(frozen=True)
class Seeded:
    cli: Cli
    seed_output: str
    patients: list[uuid.UUID]
    seeded_in: Path  # the data folder the seed command ran in (its output names it)


@pytest.fixture(scope="module")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    cli = Cli(tmp_path_factory.mktemp("seeded"))
    cli.ok("init")
    output = cli.ok("seed", "--patients", "5", "--seed", "1")
    credentials = json.loads((cli.data_dir / "demo-credentials.json").read_text("utf-8"))
    patients = [uuid.UUID(p["id"]) for p in credentials["patients"]]
    return Seeded(cli, output, patients, cli.data_dir)


@pytest.fixture
def seeded(seeded_template: Seeded, tmp_path: Path) -> Seeded:
    """This test's own copy of the seeded data folder (database and key file)."""
    cli = Cli(tmp_path)
    shutil.copytree(seeded_template.cli.data_dir, cli.data_dir)
    return Seeded(
        cli, seeded_template.seed_output, seeded_template.patients, seeded_template.seeded_in
    )


def with_nir(seeded: Seeded) -> uuid.UUID:
    """A seeded patient who has a NIR."""
    with reader(seeded.cli) as session:
        for patient_id in seeded.patients:
            if unsafe_get_patient(session=session, patient_id=patient_id).nir:
                return patient_id
    pytest.fail("the seeded patients have no NIR")


# -- init, seed, show -----------------------------------------------------------------


def test_init_makes_a_private_data_dir_and_key_file_and_can_run_again(tmp_path: Path) -> None:
    cli = Cli(tmp_path)

    first = cli.ok("init")

    assert "key provider: file, root key version 1" in first
    assert "database ready: sqlite:///" in first
    assert mode(cli.data_dir) == 0o700
    assert mode(cli.key_file) == 0o600
    assert cli.database.is_file()
    key_bytes = cli.key_file.read_bytes()

    second = cli.ok("init")

    assert "root key version 1" in second
    assert cli.key_file.read_bytes() == key_bytes
    assert mode(cli.key_file) == 0o600
    status = cli.ok("keys", "status")
    assert "provider: file" in status
    assert "current root key version: 1" in status


def test_seed_writes_private_credentials_and_show_masks_the_nir(seeded: Seeded) -> None:
    cli = seeded.cli
    credentials_file = cli.data_dir / "demo-credentials.json"
    assert "5 patients created" in seeded.seed_output
    assert str(seeded.seeded_in / credentials_file.name) in seeded.seed_output
    assert mode(credentials_file) == 0o600
    credentials = json.loads(credentials_file.read_text("utf-8"))
    assert len(credentials["patients"]) == 5
    assert all(p["email"].endswith("@example.fr") for p in credentials["patients"])
    patient_id = with_nir(seeded)
    with reader(cli) as session:
        # The 5 patients and 3 honeytokens, indistinguishable in the database.
        assert len(session.scalars(select(Patient.id)).all()) == 5 + 3
        patient = unsafe_get_patient(session=session, patient_id=patient_id)
        names, email, nir = (patient.given_names, patient.family_name), patient.email, patient.nir
    assert nir is not None

    out = cli.ok("patients", "show", str(patient_id), *SHOW_REASON)

    shown = json.loads(out)
    assert uuid.UUID(shown["id"]) == patient_id
    assert (shown["given_names"], shown["family_name"]) == names
    assert shown["email"] == email
    assert shown["nir_masked"].startswith(nir[0])
    assert shown["nir_masked"].endswith(nir[-2:])
    assert "*" in shown["nir_masked"]
    assert nir[:13] not in out
    assert nir[:13] not in re.sub(r"\s", "", out)


# -- keys -------------------------------------------------------------------------------


def test_keys_rotate_then_rotate_one_patient(seeded: Seeded) -> None:
    cli = seeded.cli
    patient_id = with_nir(seeded)
    with reader(cli) as session:
        patient = unsafe_get_patient(session=session, patient_id=patient_id)
        before = {c: getattr(patient, c) for c in SEALED_COLUMNS}
        names = (patient.given_names, patient.family_name)

    status = cli.ok("keys", "status")
    assert "provider: file" in status
    assert "root key versions: 1\n" in status
    assert "current root key version: 1" in status
    # 5 patients, 3 honeytokens, and the 17 seeded staff accounts (12 practitioners, two
    # admins, a support and two dpos), whose credentials are sealed under keys of their own.
    assert "data keys wrapped by root version 1: 25" in status

    rotated = cli.ok("keys", "rotate")
    assert "root key version 2 finished: 25 data keys rewrapped" in rotated

    status = cli.ok("keys", "status")
    assert "root key versions: 1, 2" in status
    assert "current root key version: 2" in status
    assert "data keys wrapped by root version 2: 25" in status
    assert "wrapped by root version 1" not in status

    out = cli.ok("keys", "rotate-patient", str(patient_id))
    # The record's 8 fields, and those of the patient's account (email, password hash
    # at least) and consultations, which the seed now creates too.
    fields = re.search(rf"patient {patient_id}: (\d+) fields re-encrypted", out)
    assert fields is not None, out
    assert int(fields[1]) >= 8 + 2

    assert [(v, s, w is None) for v, s, w in data_keys(cli, patient_id)] == [
        (1, KeyState.DESTROYED, True),
        (2, KeyState.ACTIVE, False),
    ]
    with reader(cli) as session:
        patient = unsafe_get_patient(session=session, patient_id=patient_id)
        for column, old in before.items():
            new = getattr(patient, column)
            assert new != old, column
            assert peek_key_version(new) == 2, column
        assert (patient.given_names, patient.family_name) == names


# -- errors -----------------------------------------------------------------------------


def _key_file(cli: Cli) -> None:
    FileKeyProvider.create(cli.key_file)


def _open_key_file(cli: Cli) -> None:
    FileKeyProvider.create(cli.key_file)
    cli.key_file.chmod(0o644)


def _malformed_key_file(cli: Cli) -> None:
    cli.data_dir.mkdir(mode=0o700)
    fd = os.open(cli.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write('{"format": 1, "root": {"1": "not base64!"}, "index": ""}')


def _nothing(cli: Cli) -> None:
    pass


@dataclass(frozen=True)
class BadSetup:
    prepare: Callable[[Cli], None]
    args: tuple[str, ...]
    env: dict[str, str]
    says: tuple[str, ...]
    never_says: tuple[str, ...] = ()


UNKNOWN = uuid.UUID(int=1)
PKCS11 = {"HIPPOCRATE_KEY_PROVIDER": "pkcs11"}
PG_PASSWORD = "s3cret-Passw0rd"  # must never be echoed by an error message

BAD_SETUPS = [
    pytest.param(
        BadSetup(_nothing, ("keys", "status"), {}, ("does not exist", "hippocrate init")),
        id="key-file-missing",
    ),
    pytest.param(
        BadSetup(_open_key_file, ("keys", "status"), {}, ("mode 0644", "must be 0600")),
        id="key-file-readable-by-others",
    ),
    pytest.param(
        BadSetup(
            _malformed_key_file,
            ("patients", "show", str(UNKNOWN), *SHOW_REASON),
            {},
            ("malformed",),
        ),
        id="key-file-malformed",
    ),
    pytest.param(
        BadSetup(_key_file, ("keys", "status"), {}, ("no schema", "hippocrate init")),
        id="database-not-initialised",
    ),
    pytest.param(
        BadSetup(
            _nothing,
            ("init",),
            PKCS11,
            ("HIPPOCRATE_PKCS11_MODULE", "HIPPOCRATE_PKCS11_TOKEN", "HIPPOCRATE_PKCS11_PIN"),
        ),
        id="pkcs11-without-settings",
    ),
    pytest.param(
        BadSetup(
            _nothing,
            ("init",),
            {**PKCS11, "HIPPOCRATE_PKCS11_MODULE": "lib.so", "HIPPOCRATE_PKCS11_TOKEN": "t"},
            ("needs HIPPOCRATE_PKCS11_PIN",),
            never_says=("HIPPOCRATE_PKCS11_MODULE", "HIPPOCRATE_PKCS11_TOKEN"),
        ),
        id="pkcs11-without-pin",
    ),
    pytest.param(
        BadSetup(
            _nothing,
            ("init",),
            {
                **PKCS11,
                "HIPPOCRATE_PKCS11_MODULE": "no-such-dir/libno-such-module.so",
                "HIPPOCRATE_PKCS11_TOKEN": "hippocrate",
                "HIPPOCRATE_PKCS11_PIN": "1234",
            },
            ("libno-such-module.so", "cannot be loaded"),
        ),
        id="pkcs11-module-missing",
    ),
    pytest.param(
        BadSetup(
            _key_file,
            ("keys", "status"),
            {"HIPPOCRATE_DATABASE_URL": f"postgresql://hippocrate:{PG_PASSWORD}@127.0.0.1:1/h"},
            ("database error", "127.0.0.1"),
            never_says=(PG_PASSWORD,),
        ),
        id="postgresql-unreachable",
    ),
    pytest.param(
        BadSetup(
            _key_file,
            ("keys", "status"),
            {"HIPPOCRATE_DATABASE_URL": "mysql://hippocrate@127.0.0.1:1/h"},
            ("database URL cannot be used", "MySQLdb"),
        ),
        id="database-driver-not-installed",
    ),
    pytest.param(
        BadSetup(
            _key_file,
            ("keys", "status"),
            {"HIPPOCRATE_DATABASE_URL": "not a database url"},
            ("database URL cannot be used", "parse"),
        ),
        id="database-url-unparsable",
    ),
]


@pytest.mark.parametrize("bad", BAD_SETUPS)
def test_a_bad_setup_is_one_line_and_exit_1(bad: BadSetup, tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    bad.prepare(cli)

    ran = cli.run(*bad.args, **bad.env)

    line = assert_one_line_error(ran, *bad.says)
    for fragment in bad.never_says:
        assert fragment not in line, str(ran)
    if bad.env.get("HIPPOCRATE_KEY_PROVIDER") == "pkcs11":
        assert not cli.key_file.exists(), "fell back to the key file"


def test_patient_arguments_are_checked(seeded: Seeded) -> None:
    cli = seeded.cli
    unknown = str(uuid.uuid4())

    assert_one_line_error(cli.run("patients", "show", unknown, *SHOW_REASON), "no such patient")
    assert_one_line_error(cli.run("keys", "rotate-patient", unknown), "no such patient")
    assert_one_line_error(cli.run("patients", "shred", unknown, "--yes"), "no such patient")

    malformed = cli.run("patients", "show", "not-a-uuid", *SHOW_REASON)
    assert malformed.code == 2, str(malformed)
    assert "Traceback" not in malformed.out + malformed.err, str(malformed)
    assert "Invalid value for 'patient_id'" in malformed.err, str(malformed)
    assert malformed.out == "", str(malformed)


def test_a_tampered_value_fails_closed_and_rotation_changes_nothing(seeded: Seeded) -> None:
    cli = seeded.cli
    patient_id, other_id = seeded.patients[0], seeded.patients[1]
    with reader(cli) as session:
        given_names = unsafe_get_patient(session=session, patient_id=patient_id).given_names
    assert given_names
    keys_before = data_keys(cli, patient_id)
    assert [(v, s) for v, s, _ in keys_before] == [(1, KeyState.ACTIVE)]
    with sqlite3.connect(cli.database) as connection:
        (sealed,) = connection.execute(
            "SELECT family_name FROM patients WHERE id = ?", (patient_id.hex,)
        ).fetchone()
        tampered = bytearray(sealed)
        tampered[HEADER_BYTES + NONCE_BYTES] ^= 0x01  # first ciphertext byte
        changed = connection.execute(
            "UPDATE patients SET family_name = ? WHERE id = ?", (bytes(tampered), patient_id.hex)
        ).rowcount
        (kind,) = connection.execute(
            "SELECT typeof(family_name) FROM patients WHERE id = ?", (patient_id.hex,)
        ).fetchone()
    connection.close()
    assert (changed, kind) == (1, "blob")
    row_before = patient_row(cli, patient_id)

    shown = cli.run("patients", "show", str(patient_id), *SHOW_REASON)

    assert_one_line_error(shown, "does not open", "patients.family_name")
    assert shown.out == ""
    assert given_names not in shown.err

    rotated = cli.run("keys", "rotate-patient", str(patient_id))

    assert_one_line_error(rotated, "does not open", "patients.family_name")
    assert data_keys(cli, patient_id) == keys_before
    assert patient_row(cli, patient_id) == row_before
    with reader(cli) as session:
        assert unsafe_get_patient(session=session, patient_id=other_id).family_name


def test_shred_needs_yes_then_nothing_of_the_patient_opens(seeded: Seeded) -> None:
    cli = seeded.cli
    patient_id = seeded.patients[0]

    refused = cli.run("patients", "shred", str(patient_id))

    assert_one_line_error(refused, "--yes")
    assert [(v, s) for v, s, _ in data_keys(cli, patient_id)] == [(1, KeyState.ACTIVE)]

    out = cli.ok("patients", "shred", str(patient_id), "--yes")

    assert f"patient {patient_id}: data key destroyed" in out
    assert data_keys(cli, patient_id) == [(1, KeyState.DESTROYED, None)]
    shown = cli.run("patients", "show", str(patient_id), *SHOW_REASON)
    assert_one_line_error(shown, "erased")
    assert shown.out == ""
    with reader(cli) as session:
        # Even bypassing the service, with the root key at hand, the ciphertext is dead.
        patient = session.get(Patient, patient_id)
        assert patient is not None
        assert patient.family_name_sealed is not None
        with pytest.raises(KeyDestroyed):
            _ = patient.family_name
        assert unsafe_get_patient(session=session, patient_id=seeded.patients[1]).family_name


# -- PKCS#11 (SoftHSM2) ---------------------------------------------------------------


@pytest.fixture(scope="module")
def softhsm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_softhsm()
    return tmp_path_factory.mktemp("softhsm")


@pytest.fixture
def token_env(softhsm_dir: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A fresh SoftHSM2 token, as the environment the CLI needs to use it."""
    conf = softhsm_dir / "softhsm2.conf"
    # make_token points this process at the token directory; undo it after the test.
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    module, label, pin = make_token(softhsm_dir, label=unique_label("hippocrate-cli"))
    return {
        "SOFTHSM2_CONF": str(conf),
        "HIPPOCRATE_KEY_PROVIDER": "pkcs11",
        "HIPPOCRATE_PKCS11_MODULE": str(module),
        "HIPPOCRATE_PKCS11_TOKEN": label,
        "HIPPOCRATE_PKCS11_PIN": pin,
    }


def test_pkcs11_wrong_pin_is_one_line(token_env: dict[str, str], tmp_path: Path) -> None:
    wrong_pin = "31415926"
    cli = Cli(tmp_path, token_env)

    ran = cli.run("init", HIPPOCRATE_PKCS11_PIN=wrong_pin)

    assert_one_line_error(ran, "PIN rejected", token_env["HIPPOCRATE_PKCS11_TOKEN"])
    assert wrong_pin not in ran.out + ran.err
    assert not cli.key_file.exists()


def test_pkcs11_end_to_end(token_env: dict[str, str], tmp_path: Path) -> None:
    cli = Cli(tmp_path, token_env)

    assert "key provider: pkcs11, root key version 1" in cli.ok("init")
    assert "3 patients created" in cli.ok("seed", "--patients", "3", "--seed", "2")
    rotated = cli.ok("keys", "rotate")
    # 3 patients, 3 honeytokens, 17 staff accounts (two admins and two DPOs among them)
    assert "root key version 2 finished: 23 data keys rewrapped" in rotated
    status = cli.ok("keys", "status")
    assert "provider: pkcs11" in status
    assert "data keys wrapped by root version 2: 23" in status
    credentials = json.loads((cli.data_dir / "demo-credentials.json").read_text("utf-8"))
    first = credentials["patients"][0]

    shown = json.loads(cli.ok("patients", "show", first["id"], *SHOW_REASON))

    assert shown["id"] == first["id"]
    assert shown["email"] == first["email"]
    assert shown["given_names"]
    assert shown["family_name"]
    assert not cli.key_file.exists()


HEAVY = ("pyhanko", "fpdf", "fontTools", "fhir", "fastapi")
LOADED = """
import sys
from hippocrate.cli import app
try:
    app(args=sys.argv[1:], standalone_mode=False)
except SystemExit:
    pass
print(" ".join(sorted(name for name in {heavy!r} if name in sys.modules)))
"""


@pytest.mark.parametrize(
    ("words", "loaded"),
    [
        (["audit", "--help"], ""),
        (["keys", "status", "--help"], ""),
        (["guard", "--help"], ""),
        (["documents", "verify", "--help"], "fhir fontTools fpdf pyhanko"),
        (["serve", "--help"], ""),
    ],
)
def test_a_command_loads_only_what_it_needs(words: list[str], loaded: str) -> None:
    """Topics load when named: the PDF, signature and FHIR libraries of ``documents``
    (some seconds of start-up) are not loaded by ``audit``, ``keys`` or ``guard``."""
    done = subprocess.run(
        [sys.executable, "-c", LOADED.format(heavy=HEAVY), *words],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert done.stdout.splitlines()[-1].strip() == loaded, done.stdout

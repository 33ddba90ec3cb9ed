"""Documents signed by the HSM's key (a real SoftHSM2 token; skipped without SoftHSM2,
failed in CI), through the HTTP API and the command line beside it: a consultation
closed on a pkcs11 deployment gets documents the token signed, which the API and the
CLI (another process) both verify; a flipped byte and another deployment's token are
refused; init adds the key to a token made without it; misconfiguration is one line."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pkcs11
import pytest
from pkcs11 import Attribute
from pyhanko.pdf_utils.reader import PdfFileReader
from sqlalchemy import select

from hippocrate.config import KeyProviderKind
from hippocrate.consultations.models import Consultation, ConsultationStatus
from hippocrate.db.engine import make_engine, unsafe_unaudited_sessions
from hippocrate.documents import render
from hippocrate.documents.models import IssuedDocument
from hippocrate.documents.signing import sign_pdf
from hippocrate.keyring.service import KEYRING
from hippocrate.vault import Vault
from hippocrate.vault.providers.pkcs11 import Pkcs11KeyProvider
from tests.cli.test_cli import Cli, assert_one_line_error
from tests.conftest import Store
from tests.consultations.helpers import running_api
from tests.documents.test_issued import _check_file, _closed, _code
from tests.softhsm import make_token, require_softhsm, unique_label

LABEL = "hippocrate-documents"
GENUINE = {
    "issued": True,
    "unaltered": True,
    "reason": "Hippocrate issued this document, and it is unchanged",
}


@pytest.fixture(scope="module")
def softhsm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_softhsm()
    return tmp_path_factory.mktemp("softhsm-documents")


@pytest.fixture
def tokens(softhsm_dir: Path, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, str]]:
    """Two fresh tokens (ours and another deployment's), as the environment the CLI
    needs to use each. Made before any provider opens (see tests/softhsm.py)."""
    conf = softhsm_dir / "softhsm2.conf"
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))  # make_token sets it; undo it after
    made = []
    for prefix in ("hippocrate-docs", "hippocrate-other"):
        module, label, pin = make_token(softhsm_dir, label=unique_label(prefix))
        made.append(
            {
                "SOFTHSM2_CONF": str(conf),
                "HIPPOCRATE_KEY_PROVIDER": "pkcs11",
                "HIPPOCRATE_PKCS11_MODULE": str(module),
                "HIPPOCRATE_PKCS11_TOKEN": label,
                "HIPPOCRATE_PKCS11_PIN": pin,
            }
        )
    return made


def _provider(env: dict[str, str], *, create: bool = False) -> Pkcs11KeyProvider:
    opener = Pkcs11KeyProvider.initialise if create else Pkcs11KeyProvider
    return opener(
        module=Path(env["HIPPOCRATE_PKCS11_MODULE"]),
        token_label=env["HIPPOCRATE_PKCS11_TOKEN"],
        pin=env["HIPPOCRATE_PKCS11_PIN"],
    )


def _remove_document_key(env: dict[str, str]) -> None:
    """Make the token look initialised before the document key existed."""
    library = pkcs11.lib(env["HIPPOCRATE_PKCS11_MODULE"])
    token = library.get_token(token_label=env["HIPPOCRATE_PKCS11_TOKEN"])
    with token.open(rw=True, user_pin=env["HIPPOCRATE_PKCS11_PIN"]) as session:
        for obj in list(session.get_objects({Attribute.LABEL: LABEL})):
            obj.destroy()
        assert not list(session.get_objects({Attribute.LABEL: LABEL}))


@contextmanager
def _deployment(
    env: dict[str, str], tmp_path: Path, *, without_key: bool = False
) -> Iterator[tuple[Cli, Store]]:
    """A pkcs11 deployment made by ``hippocrate init``; its database, opened here with a
    vault on the same token (the server process)."""
    (tmp_path / "deployment").mkdir()
    cli = Cli(tmp_path / "deployment", env)
    out = cli.ok("init")
    assert "key provider: pkcs11" in out
    assert "document signing key: held in the token" in out
    assert not (cli.data_dir / "document-signing.key").exists()
    if without_key:
        _remove_document_key(env)
    vault = Vault(_provider(env))
    url = f"sqlite:///{cli.database}"
    engine = make_engine(url)
    sessions = unsafe_unaudited_sessions(engine, vault, KEYRING, why="the server's sessions")
    try:
        yield cli, Store("sqlite", url, engine, sessions, cli.database)
    finally:
        engine.dispose()
        vault.close()


def _api_settings(env: dict[str, str]) -> dict[str, Any]:
    return {
        "key_provider": KeyProviderKind.PKCS11,
        "pkcs11_module": Path(env["HIPPOCRATE_PKCS11_MODULE"]),
        "pkcs11_token": env["HIPPOCRATE_PKCS11_TOKEN"],
        "pkcs11_pin": env["HIPPOCRATE_PKCS11_PIN"],
        "document_signing_key_file": None,
    }


@pytest.fixture
def deployment(tokens: list[dict[str, str]], tmp_path: Path) -> Iterator[tuple[Cli, Store]]:
    with _deployment(tokens[0], tmp_path) as made:
        yield made


def _signer_certificate(pdf: bytes) -> bytes:
    signature = PdfFileReader(io.BytesIO(pdf), strict=False).embedded_signatures[0]
    certificate: bytes = signature.signer_cert.dump()
    return certificate


def test_documents_signed_by_the_token_verify_in_the_api_and_the_cli(
    deployment: tuple[Cli, Store], tokens: list[dict[str, str]], tmp_path: Path
) -> None:
    cli, store = deployment
    with running_api(store, tmp_path, **_api_settings(tokens[0])) as api:
        _, files, _ = _closed(api)
        prescription = files["ordonnance-hippocrate.pdf"]
        report = files["compte-rendu-hippocrate.pdf"]

        # Signed by the token's key: the certificate in the signature is the token's.
        token_key = store.sessions.vault.provider
        assert isinstance(token_key, Pkcs11KeyProvider)
        certificate = token_key.document_key().certificate
        assert _signer_certificate(prescription) == certificate
        assert _signer_certificate(report) == certificate
        assert _check_file(api, prescription) == GENUINE
        assert _check_file(api, report) == GENUINE

        flipped = bytearray(prescription)
        flipped[prescription.index(b"stream") + 30] ^= 0x01
        assert _check_file(api, bytes(flipped))["issued"] is False

        # Another deployment's HSM signs a lookalike with the real code on it.
        other = _provider(tokens[1], create=True)
        try:
            lookalike = render.prescription_pdf(
                font=render.font_path(None),
                prescriber=render.Prescriber("Claire", "Dubreuil", "Médecine générale", "1"),
                patient=render.Person("Lucie", "Martin", date(1985, 6, 14)),
                items=["Amoxicilline 1 g : matin et soir pendant 6 jours"],
                issued=render.Issued(_code(prescription), datetime.now(UTC), "https://h.example"),
            )
            forged = sign_pdf(lookalike, other.document_key())
        finally:
            other.close()
        refused = _check_file(api, forged)
        assert refused["issued"] is False
        assert refused["reason"] == "this file is not signed by this Hippocrate platform"

        # The CLI is another process on the same token, beside the running server.
        for name, content in (("genuine.pdf", prescription), ("flipped.pdf", bytes(flipped))):
            (tmp_path / name).write_bytes(content)
        genuine = cli.run("documents", "verify", str(tmp_path / "genuine.pdf"))
        assert genuine.code == 0, str(genuine)
        assert genuine.out.startswith("genuine: "), str(genuine)
        changed = cli.run("documents", "verify", str(tmp_path / "flipped.pdf"))
        assert changed.code == 3, str(changed)
        assert changed.out.startswith("NOT genuine: "), str(changed)
        (tmp_path / "forged.pdf").write_bytes(forged)
        foreign = cli.run("documents", "verify", str(tmp_path / "forged.pdf"))
        assert foreign.code == 3, str(foreign)
        assert "not signed by this Hippocrate platform" in foreign.out


def test_init_adds_the_key_to_a_token_made_without_it(
    tokens: list[dict[str, str]], tmp_path: Path
) -> None:
    env = tokens[0]
    older = _provider(env, create=True)
    older.close()
    _remove_document_key(env)
    token = pkcs11.lib(env["HIPPOCRATE_PKCS11_MODULE"]).get_token(
        token_label=env["HIPPOCRATE_PKCS11_TOKEN"]
    )

    cli = Cli(tmp_path, env)
    assert "document signing key: held in the token" in cli.ok("init")

    with token.open(user_pin=env["HIPPOCRATE_PKCS11_PIN"]) as session:
        classes = sorted(
            int(obj[Attribute.CLASS]) for obj in session.get_objects({Attribute.LABEL: LABEL})
        )
    assert len(classes) == 3  # certificate, public key, private key
    assert not (cli.data_dir / "document-signing.key").exists()


def test_a_key_file_set_with_pkcs11_is_one_readable_line(
    tokens: list[dict[str, str]], tmp_path: Path
) -> None:
    cli = Cli(tmp_path, tokens[0])
    key_file = str(tmp_path / "document-signing.key")
    for args in (("init",), ("documents", "verify", "--code", "ABCD-EFGH-JKMN")):
        ran = cli.run(*args, HIPPOCRATE_DOCUMENT_SIGNING_KEY_FILE=key_file)
        assert_one_line_error(ran, "HIPPOCRATE_DOCUMENT_SIGNING_KEY_FILE", "in the token")
    assert not Path(key_file).exists()


def test_without_the_token_key_nothing_closes(
    tokens: list[dict[str, str]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        _deployment(tokens[0], tmp_path, without_key=True) as (_, store),
        running_api(store, tmp_path, **_api_settings(tokens[0])) as api,
    ):
        patient = api.patient()
        doctor = api.practitioner()
        opened = api.open(patient)
        api.take(doctor)

        with caplog.at_level(logging.ERROR, logger="hippocrate.documents"):
            refused = api.client.post(
                f"/api/v1/consultations/{opened['id']}/close",
                headers=doctor.headers,
                json={"report": "Eczéma de contact probable.", "acts": ["TCG"]},
            )

        assert refused.status_code == 503, refused.text
        assert tokens[0]["HIPPOCRATE_PKCS11_TOKEN"] not in refused.text
        assert "no document signing key; run 'hippocrate init'" in caplog.text
        with api.store.sessions() as session:
            assert session.scalar(select(Consultation.status)) is ConsultationStatus.IN_PROGRESS
            assert session.scalars(select(IssuedDocument)).all() == []

"""SoftHSM2 tokens for tests that need a real PKCS#11 token.

SoftHSM reads ``SOFTHSM2_CONF`` and scans its token directory only when the library is
initialised (``C_Initialize``), and python-pkcs11 keeps one loaded library per module
path for the whole process. So a test session uses ONE token directory (create it once,
session-scoped, with ``tmp_path_factory``) and each test a freshly initialised token with
a label of its own. After ``softhsm2-util`` writes a token, :func:`make_token`
re-initialises the library in this process so it sees the new token; that closes every
session open on the module, so create all of a test's tokens before opening providers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pkcs11
import pytest

# Where Debian and Ubuntu's softhsm2 package puts the module.
_MODULE_CANDIDATES = (
    Path("/usr/lib/softhsm/libsofthsm2.so"),
    Path("/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"),
    Path("/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so"),
)


def softhsm_module() -> Path | None:
    """The SoftHSM2 PKCS#11 module, or None when SoftHSM2 is not installed."""
    for candidate in _MODULE_CANDIDATES:
        if candidate.is_file():
            return candidate
    return None


def softhsm_missing() -> str | None:
    """Why SoftHSM2 tests cannot run here, or None when they can."""
    if softhsm_module() is None:
        places = ", ".join(str(p) for p in _MODULE_CANDIDATES)
        return f"SoftHSM2 is not installed (no libsofthsm2.so in {places}); apt install softhsm2"
    if shutil.which("softhsm2-util") is None:
        return "softhsm2-util is not on PATH; apt install softhsm2"
    return None


def require_softhsm() -> Path:
    """The SoftHSM2 module; skip the test without it, or fail it when ``CI`` is set.

    In CI a missing HSM must not turn the PKCS#11 tests into silent skips.
    """
    reason = softhsm_missing()
    if reason is not None:
        if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
            pytest.fail(f"{reason} (CI is set: SoftHSM2 tests may not be skipped)", pytrace=False)
        pytest.skip(reason)
    module = softhsm_module()
    assert module is not None
    return module


def unique_label(prefix: str = "hippocrate-test") -> str:
    """A token label no other test uses (PKCS#11 labels hold at most 32 bytes)."""
    return f"{prefix[:19]}-{uuid.uuid4().hex[:12]}"


def make_token(
    tmp_path: Path,
    label: str = "hippocrate-test",
    pin: str = "1234",
    so_pin: str = "5678",
) -> tuple[Path, str, str]:
    """Initialise a SoftHSM2 token labelled ``label`` under ``tmp_path``.

    ``tmp_path`` holds ``softhsm2.conf`` and the ``tokens`` directory; pass the same
    session-wide directory on every call (see the module docstring) and a new label each
    time. Returns ``(module, label, pin)``.
    """
    module = softhsm_module()
    if module is None:
        raise RuntimeError(softhsm_missing())
    tokens = tmp_path / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    conf = tmp_path / "softhsm2.conf"
    if not conf.exists():
        conf.write_text(
            f"directories.tokendir = {tokens}\n"
            "objectstore.backend = file\n"
            "log.level = ERROR\n"
            "slots.removable = false\n"
        )
    os.environ["SOFTHSM2_CONF"] = str(conf)
    result = subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            label,
            "--pin",
            pin,
            "--so-pin",
            so_pin,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"softhsm2-util could not initialise token {label!r}: "
            f"{(result.stderr or result.stdout).strip()}"
        )
    # Loads the module on first use; afterwards, C_Finalize + C_Initialize makes the
    # already loaded library rescan the token directory (and re-read SOFTHSM2_CONF).
    library = pkcs11.lib(str(module.absolute()))
    library.reinitialize()
    return module, label, pin

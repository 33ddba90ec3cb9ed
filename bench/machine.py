"""What produced the figures: CPU, Python and library versions."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu() -> str:
    model = platform.processor() or platform.machine() or "unknown CPU"
    aes = None
    try:
        text = CPUINFO.read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            model = value.strip()
        elif key.strip() == "flags" and aes is None:
            aes = "aes" in value.split()
    cores = f"{os.cpu_count() or '?'} logical CPUs"
    # AES-GCM speed depends on the AES-NI and carry-less multiply instructions.
    if aes is None:
        return f"{model}, {cores}"
    return f"{model}, {cores}, AES-NI {'yes' if aes else 'no'}"


def _openssl() -> str:
    # Only the OpenSSL version is read here; nothing is encrypted with hazmat in this module.
    from cryptography.hazmat.backends.openssl import backend  # noqa: TID251

    return str(backend.openssl_version_text())


def describe() -> str:
    """One Markdown line naming the machine and the software measured."""
    return (
        f"{_cpu()}; {platform.system()} {platform.release()}; "
        f"{platform.python_implementation()} {platform.python_version()}; "
        f"cryptography {_version('cryptography')} ({_openssl()}); "
        f"SQLAlchemy {_version('SQLAlchemy')}; sqlalchemy-utils {_version('sqlalchemy-utils')}"
    )

"""Every spelling of a known value that a thief would search a dump for."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from hippocrate.identifiers import format_nir
from hippocrate.patients.schemas import PatientCreate


def spellings_of_patient(data: PatientCreate) -> dict[str, set[str]]:
    """What must never appear in a database, a dump, a blob folder or a log."""
    national = "0" + data.phone.removeprefix("+33") if data.phone.startswith("+33") else ""
    found: dict[str, set[str]] = {
        "given_names": {data.given_names},
        "family_name": {data.family_name},
        "email": {data.email, data.email.split("@")[0]},
        "phone": {data.phone, data.phone.removeprefix("+")},
        "address": {data.address.line1, data.address.city},
        "birth_date": spellings_of_date(data.birth_date),
    }
    if national:
        pairs = " ".join(national[i : i + 2] for i in range(0, 10, 2))
        found["phone"] |= {national, pairs, pairs.replace(" ", ".")}
    if data.nir:
        found["nir"] = {data.nir, format_nir(data.nir), data.nir[:13]}
    return found


def spellings_of_date(day: date) -> set[str]:
    return {
        day.isoformat(),
        day.strftime("%d/%m/%Y"),
        day.strftime("%d-%m-%Y"),
        day.strftime("%d.%m.%Y"),
        day.strftime("%Y%m%d"),
        day.strftime("%d%m%Y"),
    }


def find_in(haystack: bytes, spellings: dict[str, set[str]]) -> list[str]:
    """The spellings found in ``haystack``: as UTF-8, UTF-16 (as some engines store
    text) and hexadecimal (as pg_dump writes bytea)."""
    lowered = haystack.lower()
    hits = []
    for field, values in spellings.items():
        for value in values:
            utf8 = value.encode("utf-8")
            for encoded in (utf8, value.encode("utf-16-le"), utf8.hex().encode("ascii")):
                if len(value) >= 4 and encoded.lower() in lowered:
                    hits.append(f"{field}: {value!r}")
    return hits


def spellings_of_texts(**texts: str | list[str]) -> dict[str, set[str]]:
    """Free texts (subjects, messages, reports…) and their distinctive fragments: a
    thief searching a dump looks for a phrase, not only for the whole text."""
    found: dict[str, set[str]] = {}
    for field, values in texts.items():
        for value in [values] if isinstance(values, str) else values:
            words = value.split()
            fragments = {value, *(" ".join(words[i : i + 3]) for i in range(0, len(words), 3))}
            found.setdefault(field, set()).update(f for f in fragments if len(f) >= 8)
    return found


def read_tree(root: Path) -> bytes:
    """Every byte of every file under ``root`` (a blob folder, an outbox)."""
    if not root.exists():
        return b""
    return b"".join(path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file())

"""Importing an existing platform's patients: patients per second, and the cost of
each stage, on PostgreSQL with the file key provider (and SoftHSM2 when installed).

One synthetic CSV of ``count`` patients (the demo's generator) is imported by the real
command path (``interop.importer.import_file`` in units of work of the platform, with
the recorder and the guard) into an empty database, once with one importing process
and once with two (``--workers 2``). Beside it, in the same run, each stage alone over
the same rows: parse and validate, a data key made and wrapped one at a time and in
the import's batches (one provider call per batch), the eight fields sealed, the three
blind indexes, and already-sealed rows written bare with an executemany INSERT and
with the import's binary COPY (the database floor).
The goal is MédecinDirect's 14 million patients in under 25 minutes: 9,400 per second.
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import sessionmaker

from bench import api
from hippocrate.cli.interop import open_platform
from hippocrate.config import KeyProviderKind, Settings
from hippocrate.db.engine import make_engine
from hippocrate.interop.bulk import insert_rows
from hippocrate.interop.importer import BATCH, CSV_COLUMNS, import_file, rows_of, validated
from hippocrate.patients.models import Patient
from hippocrate.patients.synthetic import SyntheticPatients
from hippocrate.runtime import Runtime
from hippocrate.vault import FieldContext, Padding
from hippocrate.vault.fields import seal

GOAL_PER_SECOND = 9_400
#: The whole path with one importing process, then one per core of this machine.
WORKERS = (1, 2)
FIELDS = ("given_names", "family_name", "birth_date", "sex", "email", "phone", "address", "nir")


@dataclass(frozen=True)
class Stage:
    name: str
    seconds: float
    count: int

    @property
    def per_second(self) -> float:
        return self.count / self.seconds if self.seconds else float("inf")


@dataclass(frozen=True)
class ImportRun:
    provider: str
    count: int
    stages: list[Stage]
    imported: int
    rejected: int


def write_source(path: Path, count: int, seed: int, *, start: int = 0) -> None:
    """``count`` synthetic patients numbered from ``start`` (their addresses unique
    across files with disjoint numbers)."""
    generator = SyntheticPatients(seed + start)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(CSV_COLUMNS))
        writer.writeheader()
        for index in range(start, start + count):
            data = generator.patient()
            writer.writerow(
                {
                    "given_names": data.given_names,
                    "family_name": data.family_name,
                    "birth_date": data.birth_date.isoformat(),
                    "sex": data.sex,
                    # Unique whatever the generator draws: duplicates would be refused.
                    "email": f"{index}.{data.email}",
                    "phone": data.phone,
                    "address_line1": data.address.line1,
                    "address_line2": data.address.line2 or "",
                    "postal_code": data.address.postal_code,
                    "city": data.address.city,
                    "country": data.address.country,
                    "nir": "",
                }
            )


def _timed(name: str, count: int, work: Callable[[], Any]) -> Stage:
    started = time.perf_counter()
    work()
    return Stage(name, time.perf_counter() - started, count)


def _stages(settings: Settings, source: Path, count: int) -> list[Stage]:
    parsed = [validated(raw) for _, raw in rows_of(source, "csv") if isinstance(raw, dict)]
    stages = [
        _timed(
            "parse and validate",
            count,
            lambda: [validated(raw) for _, raw in rows_of(source, "csv") if isinstance(raw, dict)],
        )
    ]
    runtime = Runtime.open(settings)
    try:
        vault = runtime.sessions.vault
        owners = [uuid.uuid4() for _ in parsed]
        keys: list[Any] = []
        stages.append(
            _timed(
                "data key made and wrapped",
                count,
                lambda: keys.extend(vault.new_data_key(owner) for owner in owners),
            )
        )

        def batch_keys() -> None:
            for start in range(0, count, BATCH):
                vault.new_data_keys(owners[start : start + BATCH], 1)

        stages.append(
            _timed(
                f"data keys made and wrapped, {BATCH} per provider call (the import's)",
                count,
                batch_keys,
            )
        )
        pad = Padding(64)

        def seal_all() -> None:
            for (_, key), data in zip(keys, parsed, strict=True):
                for column in FIELDS:
                    value = str(getattr(data, column) or "").encode()
                    seal(key, value, FieldContext("patients", column, key.owner), pad)

        stages.append(_timed("eight fields sealed", count, seal_all))
        stages.append(
            _timed(
                "three blind indexes",
                count,
                lambda: [
                    (
                        vault.blind_index("email", data.email),
                        vault.blind_index("phone", data.phone),
                        vault.blind_index("nir", data.email),
                    )
                    for data in parsed
                ],
            )
        )
    finally:
        runtime.close()
    engine = make_engine(settings.resolved_database_url)
    rows = [
        {
            "id": uuid.uuid4(),
            "status": "active",
            **{f"{column}_sealed": os.urandom(96) for column in FIELDS},
            "email_index": index,
            "created_at": datetime.now(UTC),
            "updated_at": datetime.now(UTC),
        }
        for index in range(count)
    ]

    def insert_floor() -> None:
        with engine.begin() as connection:
            for start in range(0, count, BATCH):
                connection.execute(insert(Patient), rows[start : start + BATCH])

    stages.append(_timed("bare executemany INSERT of sealed rows", count, insert_floor))
    sessions = sessionmaker(engine)
    # The same rows by column name (what insert_rows takes), with ids of their own.
    copied = [
        {
            **{k: v for k, v in row.items() if not k.endswith("_sealed")},
            **{column: row[f"{column}_sealed"] for column in FIELDS},
            "id": uuid.uuid4(),
        }
        for row in rows
    ]

    def copy_floor() -> None:
        with sessions.begin() as session:
            for start in range(0, count, BATCH):
                insert_rows(session, Patient, copied[start : start + BATCH])

    stages.append(_timed("bare COPY of sealed rows (the import's; floor)", count, copy_floor))
    engine.dispose()
    return stages


def _import(settings: Settings, source: Path, workers: int) -> tuple[Stage, int, int]:
    """The command's path: units of work of the platform (recorder, guard), batches of
    ``BATCH``, ``workers`` importing processes (each started, with its own runtime,
    inside the time measured)."""
    with open_platform(settings) as begin:
        started = time.perf_counter()
        outcome = import_file(
            path=source,
            fmt="csv",
            settings=settings,
            begin=begin,
            now=lambda: datetime.now(UTC),
            workers=workers,
            opener=open_platform,
        )
        elapsed = time.perf_counter() - started
    name = f"hippocrate import, {workers} worker{'s' if workers > 1 else ''} (whole path)"
    return Stage(name, elapsed, outcome.imported), outcome.imported, len(outcome.rejected)


def _settings(data_dir: Path, url: str, provider: str) -> Settings:
    """Everything named; the token's module, label and PIN from the environment."""
    if provider == "file":
        return api._settings(data_dir, url, None)
    return Settings(
        data_dir=data_dir,
        database_url=url,
        key_provider=KeyProviderKind.PKCS11,
        smtp_host=None,
        redis_url=None,
    )


def _one(provider: str, count: int, seed: int, env: dict[str, str]) -> ImportRun:
    root = Path(tempfile.mkdtemp(prefix="hippocrate-bench-import-"))
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        source = root / "patients.csv"
        write_source(source, count, seed)
        stages: list[Stage] = []
        imported = rejected = 0
        for workers in WORKERS:
            # A fresh database each: the same file into an empty platform.
            with api._postgres_database() as url:
                settings = _settings(root / f"data-{workers}", url, provider)
                api._init(settings)
                whole, imported, rejected = _import(settings, source, workers)
                stages.append(whole)
                if workers == WORKERS[-1]:
                    stages += _stages(settings, source, count)
        return ImportRun(provider, count, stages, imported, rejected)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(root, ignore_errors=True)


def run(*, count: int = 2000, seed: int = 2024) -> list[ImportRun]:
    runs = [_one("file", count, seed, {})]
    softhsm = _softhsm_env()
    if softhsm is not None:
        runs.append(_one("pkcs11", count, seed, softhsm))
    return runs


def _softhsm_env() -> dict[str, str] | None:
    if shutil.which("softhsm2-util") is None:
        return None
    from tests.softhsm import make_token, unique_label

    directory = Path(tempfile.mkdtemp(prefix="hippocrate-bench-hsm-"))
    module, label, pin = make_token(directory, label=unique_label("bench-import"))
    return {
        "SOFTHSM2_CONF": str(directory / "softhsm2.conf"),
        "HIPPOCRATE_PKCS11_MODULE": str(module),
        "HIPPOCRATE_PKCS11_TOKEN": label,
        "HIPPOCRATE_PKCS11_PIN": pin,
    }


def report(runs: list[ImportRun]) -> str:
    lines = [
        "## Importing patients",
        "",
        f"{runs[0].count} synthetic patients from one CSV into PostgreSQL; the goal is "
        f"{GOAL_PER_SECOND:,} patients/s (14 million in 25 minutes).",
        "",
        "| key provider | stage | patients/s | µs per patient | of the goal |",
        "|---|---|---:|---:|---:|",
    ]
    for one in runs:
        for stage in one.stages:
            lines.append(
                f"| {one.provider} | {stage.name} | {stage.per_second:,.0f} | "
                f"{1e6 / stage.per_second:,.0f} | {stage.per_second / GOAL_PER_SECOND:.2f}× |"
            )
        lines.append(
            f"| {one.provider} | imported / rejected | {one.imported} / {one.rejected} | | |"
        )
    lines.append("")
    return "\n".join(lines)

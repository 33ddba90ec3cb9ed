"""Finding an account by its email (the sign-in and registration path) as the platform
grows: 10,000, 100,000 and 1,000,000 patients in PostgreSQL.

The patients come in through ``hippocrate import``'s path (bulk batches, each with its
own data key, email sealed with its truncated blind index), in steps, so that each size
is the one before plus the new rows. At each size, the same ``LOOKUPS`` known addresses
(drawn among every row imported so far) and as many unknown ones are looked up:

- **the lookup**: ``identity.signin.unsafe_account_by_email`` in a unit of work of its
  own, as sign-in does (session, blind index, the indexed query, each candidate's data
  key unwrapped and its email opened to confirm, commit with its trail; the chainer's
  thread runs, as in the server);
- **the lookup with no commit**: the same known addresses in one open unit of work
  (what the lookup itself costs, without the durable commit of its trail event);
- **the indexed query alone** (the floor): the same ``SELECT`` of the account ids for
  that blind index, on a connection, nothing opened.
"""

from __future__ import annotations

import csv
import math
import random
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from bench import api, importing
from hippocrate.audit import chainer
from hippocrate.cli.context import platform_work
from hippocrate.cli.interop import open_platform
from hippocrate.identity.models import Account
from hippocrate.identity.signin import email_index, unsafe_account_by_email
from hippocrate.interop.importer import import_file
from hippocrate.runtime import Runtime
from hippocrate.tags import Purpose

SIZES = (10_000, 100_000, 1_000_000)
LOOKUPS = 300


@dataclass
class Size:
    patients: int
    seeded_seconds: float
    known: list[float] = field(default_factory=list)  # the lookup, seconds
    unknown: list[float] = field(default_factory=list)
    floor: list[float] = field(default_factory=list)  # the indexed query alone
    inside: list[float] = field(default_factory=list)  # known, in one open unit of work
    found: int = 0


@dataclass
class LookupResult:
    sizes: list[Size] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def _emails(source: Path) -> list[str]:
    with source.open(encoding="utf-8", newline="") as handle:
        return [row["email"] for row in csv.DictReader(handle)]


def _measure(rt: Runtime, size: Size, known: list[str], unknown: list[str]) -> None:
    for email in known + unknown:
        began = time.perf_counter()
        with platform_work(rt, Purpose.OPERATIONS) as session:
            account = unsafe_account_by_email(session=session, email=email)
        spent = time.perf_counter() - began
        if email in known:
            size.known.append(spent)
            size.found += account is not None
        else:
            size.unknown.append(spent)
    with platform_work(rt, Purpose.OPERATIONS) as session:
        for email in known:
            began = time.perf_counter()
            unsafe_account_by_email(session=session, email=email)
            size.inside.append(time.perf_counter() - began)
    with rt.sessions() as session:
        indexes = [email_index(session, email) for email in known + unknown]
    with rt.sessions.engine.connect() as connection:
        for index in indexes:
            began = time.perf_counter()
            connection.execute(select(Account.id).where(Account.email_index == index)).all()
            size.floor.append(time.perf_counter() - began)


def run(*, largest: int = SIZES[-1], seed: int = 2024) -> LookupResult:
    result = LookupResult()
    sizes = [s for s in SIZES if s <= largest] or [largest]
    root = Path(tempfile.mkdtemp(prefix="hippocrate-bench-lookup-"))
    draw = random.Random(seed)
    try:
        with api._postgres_database() as url:
            settings = importing._settings(root / "data", url, "file")
            api._init(settings)
            emails: list[str] = []
            for step, target in enumerate(sizes):
                source = root / f"step{step}.csv"
                importing.write_source(source, target - len(emails), seed, start=len(emails))
                began = time.perf_counter()
                with open_platform(settings) as begin:
                    outcome = import_file(
                        path=source,
                        fmt="csv",
                        settings=settings,
                        begin=begin,
                        now=lambda: datetime.now(UTC),
                        workers=2,
                        opener=open_platform,
                    )
                seeded = time.perf_counter() - began
                if outcome.rejected:
                    raise RuntimeError(
                        f"{len(outcome.rejected)} rows refused: {outcome.rejected[0]}"
                    )
                emails += _emails(source)
                size = Size(len(emails), seeded)
                known = draw.sample(emails, LOOKUPS)
                unknown = [f"nobody.{draw.getrandbits(64):x}@example.org" for _ in range(LOOKUPS)]
                rt = Runtime.open(settings)
                # As in the server: the chainer's thread links the lookups' events.
                linking = chainer.start(rt.sessions.engine, settings.audit_chain_seconds)
                try:
                    _measure(rt, size, known, unknown)
                finally:
                    if linking is not None:
                        linking.stop()
                    rt.close()
                result.sizes.append(size)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return result


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.2f}"


def report(result: LookupResult) -> str:
    lines = [
        "## Finding an account by its email",
        "",
        f"PostgreSQL; {LOOKUPS} known and {LOOKUPS} unknown addresses at each size; the "
        "lookup in a unit of work of its own, as sign-in does; the floor is the indexed "
        "query alone (ms).",
        "",
        "| Patients | Import to this size (s) | Known p50 | Known p99 | Unknown p50 "
        "| Unknown p99 | Known, no commit p50 | Known, no commit p99 | Indexed query p50 "
        "| Indexed query p99 | Known found |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for s in result.sizes:
        lines.append(
            f"| {s.patients:,} | {s.seeded_seconds:,.0f} | {_ms(percentile(s.known, 50))} "
            f"| {_ms(percentile(s.known, 99))} | {_ms(percentile(s.unknown, 50))} "
            f"| {_ms(percentile(s.unknown, 99))} | {_ms(percentile(s.inside, 50))} "
            f"| {_ms(percentile(s.inside, 99))} | {_ms(percentile(s.floor, 50))} "
            f"| {_ms(percentile(s.floor, 99))} | {s.found}/{len(s.known)} |"
        )
    lines += [f"- skipped: {s}" for s in result.skipped]
    return "\n".join(lines) + "\n\n"

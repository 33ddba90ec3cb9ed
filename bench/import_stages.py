"""Where one importing process spends its time: the import's path run whole (one
process, file provider, an empty PostgreSQL database), each of its stages timed inside
the process by a wrapper (wall time, and the thread's CPU time, which the machine's
other load disturbs less). Run it alternately on two versions of the code to compare
them on a shared machine:

    python -m bench.import_stages 5000

The stages nest: ``admit`` holds ``admit.lock`` and ``admit.lookup``, ``write`` holds
``write.rows`` and ``write.insert``; the audit trail's append runs inside the commit,
its chainer after it.
"""

from __future__ import annotations

import collections
import functools
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hippocrate.audit.chainer as chainer
import hippocrate.audit.recorder as recorder
from bench import api, importing
from hippocrate.cli.interop import open_platform
from hippocrate.interop import bulk, importer

WALL: collections.defaultdict[str, float] = collections.defaultdict(float)
CPU: collections.defaultdict[str, float] = collections.defaultdict(float)


def _timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def timed(*args: Any, **kwargs: Any) -> Any:
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return function(*args, **kwargs)
        finally:
            WALL[name] += time.perf_counter() - wall
            CPU[name] += time.thread_time() - cpu

    return timed


#: (module, function, stage name): each function is replaced by its timed self.
STAGES: list[tuple[Any, str, str]] = [
    (bulk, "admit", "admit"),
    (bulk, "_lock", "admit.lock"),
    (bulk, "unsafe_held", "admit.lookup"),
    (bulk, "write", "write"),
    (bulk, "rows_of", "write.rows"),
    (bulk, "insert_rows", "write.insert"),
    (importer, "validated", "validate"),
    (recorder, "append", "audit append"),
    (chainer, "chain_pending", "audit chainer"),
]


def _instrument() -> None:
    for module, function, stage in STAGES:
        setattr(module, function, _timed(stage, getattr(module, function)))


def main(count: int) -> str:
    _instrument()
    root = Path(tempfile.mkdtemp(prefix="hippocrate-bench-stages-"))
    source = root / "patients.csv"
    importing.write_source(source, count, 2024)
    with api._postgres_database() as url:
        settings = importing._settings(root / "data", url, "file")
        api._init(settings)
        with open_platform(settings) as begin:
            wall, cpu = time.perf_counter(), time.process_time()
            outcome = importer.import_file(
                path=source,
                fmt="csv",
                settings=settings,
                begin=begin,
                now=lambda: datetime.now(UTC),
            )
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    lines = [
        f"{outcome.imported} imported, {outcome.imported / wall:,.0f} patients/s; "
        f"the process's CPU {1e6 * cpu / count:,.0f} µs per patient",
        "| stage | wall µs per patient | CPU µs per patient |",
        "|---|---:|---:|",
    ]
    for name in sorted(WALL):
        lines.append(
            f"| {name} | {1e6 * WALL[name] / count:,.0f} | {1e6 * CPU[name] / count:,.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000))

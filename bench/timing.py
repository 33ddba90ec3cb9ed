"""Interleaved timing of a few cases, in nanoseconds per operation.

Each case is a callable that performs ``ops`` operations. Cases are timed in turn within
every repetition, so a slow-down of the machine (another process, frequency scaling)
hits all of them alike instead of the one that happened to run at that moment. The
garbage collector is off while a sample runs, as ``timeit`` does.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

#: A sample shorter than this repeats its case until it is not (timer noise).
MIN_SAMPLE_NS = 50_000_000


@dataclass(frozen=True)
class Case:
    name: str
    run: Callable[[], None]
    ops: int


@dataclass(frozen=True)
class Timing:
    """Nanoseconds per operation over the repetitions of one case."""

    median: float
    best: float


def _sample(run: Callable[[], None], loops: int) -> int:
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        for _ in range(loops):
            run()
        return time.perf_counter_ns() - start
    finally:
        gc.enable()


def measure(cases: list[Case], *, repeat: int, warmup: int = 1) -> dict[str, Timing]:
    """Median and best nanoseconds per operation of each case over ``repeat`` samples.

    The first run of each case sets how many passes make one sample (at least
    ``MIN_SAMPLE_NS``); ``warmup`` more samples are then taken and thrown away.
    """
    loops: dict[str, int] = {}
    for case in cases:
        first = max(_sample(case.run, 1), 1)
        loops[case.name] = max(1, math.ceil(MIN_SAMPLE_NS / first))
    samples: dict[str, list[float]] = {case.name: [] for case in cases}
    for round_ in range(warmup + repeat):
        for case in cases:
            elapsed = _sample(case.run, loops[case.name])
            if round_ >= warmup:
                samples[case.name].append(elapsed / (loops[case.name] * case.ops))
    return {
        name: Timing(median=statistics.median(values), best=min(values))
        for name, values in samples.items()
    }

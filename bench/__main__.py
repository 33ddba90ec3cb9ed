"""``python -m bench``: measure, print the Markdown report, optionally save it."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bench import fields, machine


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--patients", type=int, default=1000, help="synthetic patients")
    parser.add_argument("--seed", type=int, default=2024, help="seed of the synthetic data")
    parser.add_argument("--repeat", type=int, default=7, help="timed repetitions per case")
    parser.add_argument("--output", type=Path, help="also write the report to this file")
    args = parser.parse_args(argv)
    if args.patients < 1 or args.repeat < 1:
        parser.error("--patients and --repeat must be at least 1")

    started = time.monotonic()
    result = fields.run(patients=args.patients, seed=args.seed, repeat=args.repeat)
    report = "\n".join(
        [
            f"Machine: {machine.describe()}.",
            f"Command: `python -m bench --patients {args.patients} --seed {args.seed} "
            f"--repeat {args.repeat}` ({time.monotonic() - started:.0f} s).",
            "",
            fields.report(result),
        ]
    )
    print(report, end="")
    if args.output is not None:
        args.output.write_text(report, encoding="utf-8")


if __name__ == "__main__":
    main()

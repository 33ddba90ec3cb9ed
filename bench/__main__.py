"""``python -m bench``: measure, print the Markdown report, optionally save it."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bench import audit, fields, machine

#: Every section, in the order they run.
SECTIONS = (
    "fields",
    "audit",
    "containment",
    "api",
    "rotation",
    "anonymous",
    "registrations",
    "importing",
    "documents",
    "breach",
    "tax",
    "trips",
    "pages",
    "chain",
    "lookup",
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--patients", type=int, default=1000, help="synthetic patients")
    parser.add_argument("--seed", type=int, default=2024, help="seed of the synthetic data")
    parser.add_argument("--repeat", type=int, default=7, help="timed repetitions per case")
    parser.add_argument("--output", type=Path, help="also write the report to this file")
    parser.add_argument(
        "sections",
        nargs="*",
        choices=SECTIONS,
        help="what to measure (default: all)",
    )
    parser.add_argument("--events", type=int, default=1_000_000, help="audit events to verify")
    parser.add_argument(
        "--import-patients", type=int, default=2000, help="patients in the import benchmark"
    )
    parser.add_argument(
        "--scope-events", type=int, default=10_000_000, help="trail events a scope reads"
    )
    parser.add_argument(
        "--tax-databases",
        default="sqlite,postgresql",
        help="the databases the tax's load runs on (comma-separated: sqlite, postgresql)",
    )
    parser.add_argument(
        "--redis", default="redis://127.0.0.1:6379/15", help="Redis for the guard ('' to skip)"
    )
    parser.add_argument(
        "--lookup-patients",
        type=int,
        default=1_000_000,
        help="patients at the largest size of the email lookup benchmark",
    )
    args = parser.parse_args(argv)
    if args.patients < 1 or args.repeat < 1:
        parser.error("--patients and --repeat must be at least 1")

    sections = args.sections or list(SECTIONS)
    started = time.monotonic()
    parts = []
    if "fields" in sections:
        result = fields.run(patients=args.patients, seed=args.seed, repeat=args.repeat)
        parts.append(fields.report(result))
    if "audit" in sections:
        parts.append(audit.report(audit.run(events=args.events, redis_url=args.redis or None)))
    if "containment" in sections:
        from bench import containment

        parts.append(containment.report(containment.run()))
    if "api" in sections:
        from bench import api

        parts.append(api.report(api.run()))
    if "rotation" in sections:
        from bench import rotation

        parts.append(rotation.report(rotation.run(postgres=bool(args.redis))))
    if "anonymous" in sections:
        from bench import anonymous

        parts.append(anonymous.report(anonymous.run()))
    if "registrations" in sections:
        from bench import registrations

        parts.append(registrations.report(registrations.run(postgres=bool(args.redis))))
    if "importing" in sections:
        from bench import importing

        parts.append(importing.report(importing.run(count=args.import_patients)))
    if "documents" in sections:
        from bench import documents

        parts.append(documents.report(documents.run(repeat=args.repeat)))
    if "breach" in sections:
        from bench import breach

        parts.append(breach.report(breach.run(events=args.scope_events)))
    if "tax" in sections:
        from bench import tax

        databases = tuple(x.strip() for x in args.tax_databases.split(",") if x.strip())
        if not databases or not set(databases) <= {"sqlite", "postgresql"}:
            parser.error("--tax-databases takes sqlite, postgresql or both")
        parts.append(tax.report(tax.run(databases=databases)))
    if "trips" in sections and "tax" not in sections:
        from bench import tax

        parts.append(tax.report(tax.run(load=False)))
    if "pages" in sections:
        from bench import pages

        parts.append(pages.report(pages.run(repeat=args.repeat)))
    if "chain" in sections:
        from bench import chain

        parts.append(chain.report(chain.run()))
    if "lookup" in sections:
        from bench import lookup

        parts.append(lookup.report(lookup.run(largest=args.lookup_patients)))
    report = "\n".join(
        [
            f"Machine: {machine.describe()}.",
            f"Command: `python -m bench {' '.join(sections)}` "
            f"({time.monotonic() - started:.0f} s).",
            "",
            *parts,
        ]
    )
    print(report, end="")
    if args.output is not None:
        args.output.write_text(report, encoding="utf-8")


if __name__ == "__main__":
    main()

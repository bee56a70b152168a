"""python -m benchmarks: run scenarios against `queue-service serve` and the raw-SQL floor."""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import time
from pathlib import Path

from benchmarks.environment import Databases, make_workdir
from benchmarks.report import Figure, load_average, machine, markdown, write_json
from benchmarks.scenarios import SCENARIOS, Context, Sizes

DEFAULT_POSTGRES_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(part.replace("_", "")) for part in text.split(",") if part)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--backend", action="append", choices=["postgresql", "sqlite"], help="repeatable; default both")
    parser.add_argument(
        "--scenario",
        action="append",
        choices=sorted(SCENARIOS),
        help=f"repeatable; default all ({', '.join(SCENARIOS)})",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("QUEUE_BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL),
        help="admin URL; each scenario creates and drops its own databases there (env QUEUE_BENCH_POSTGRES_URL)",
    )
    parser.add_argument("--output", type=Path, default=Path("benchmark-results.json"), help="JSON results file")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="serve --workers (default: the server's own, cores on PostgreSQL, 1 on SQLite)",
    )
    parser.add_argument("--tiny", action="store_true", help="every size tiny: checks that the harness works")
    sizes = parser.add_argument_group("sizes (defaults: the issue's; --tiny makes them small)")
    sizes.add_argument("--lifecycle-jobs", type=int, help="jobs enqueued then drained in batches (100000)")
    sizes.add_argument("--batch", type=int, help="EnqueueJobs, LeaseJobs and TrackCompletions batch size (100)")
    sizes.add_argument("--client-threads", type=int, help="concurrent callers of the batched lifecycle (4)")
    sizes.add_argument("--rpc-jobs", type=int, help="jobs run one RPC at a time (20000)")
    sizes.add_argument("--rpc-workers", type=int, help="concurrent one-job-per-RPC workers (8)")
    sizes.add_argument("--latency-samples", type=int, help="calls per latency figure (2000)")
    sizes.add_argument("--latency-concurrency", type=_ints, help="comma-separated (1,16)")
    sizes.add_argument("--scale-jobs", type=_ints, help="comma-separated table sizes (10000,1000000); DLQ = 5 %%")
    sizes.add_argument("--scale-samples", type=int, help="calls per scale figure (300)")
    sizes.add_argument("--sweep-jobs", type=int, help="jobs in the table during the sweep (1000000)")
    sizes.add_argument("--sweep-expired", type=int, help="expired leases the sweep recovers (10000)")
    parser.add_argument("--keep-workdir", action="store_true", help="keep SQLite files and server logs")
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        help="repeatable: passed on to `queue-service serve`, e.g. --server-arg=--no-group-commit for an A/B run",
    )
    return parser


def sizes_from(args: argparse.Namespace) -> Sizes:
    base = Sizes.tiny() if args.tiny else Sizes()
    overrides = {
        item.name: getattr(args, item.name)
        for item in dataclasses.fields(Sizes)
        if getattr(args, item.name, None) is not None
    }
    return dataclasses.replace(base, **overrides)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    backends = args.backend or ["postgresql", "sqlite"]
    scenarios = args.scenario or list(SCENARIOS)
    sizes = sizes_from(args)
    started = machine()
    workdir = make_workdir()
    databases = Databases(args.postgres_url, workdir)
    figures: list[Figure] = []
    print(
        f"# {started['cpus']} CPUs ({started['cpu_model']}), {started['memory_gib']} GiB, "
        f"load {', '.join(f'{value:.2f}' for value in started['load_average'])}",
        flush=True,
    )
    try:
        for backend in backends:
            for name in scenarios:
                began = time.monotonic()
                context = Context(
                    backend=backend,
                    databases=databases,
                    sizes=sizes,
                    workers=args.workers,
                    log_dir=workdir,
                    server_args=args.server_arg,
                )
                new = SCENARIOS[name](context)
                load = os.getloadavg()
                for figure in new:
                    figure.details["load_average_after"] = load
                figures.extend(new)
                print(
                    f"\n## {name} on {backend} ({time.monotonic() - began:.0f} s, load after: {load_average()})"
                    f"\n\n{markdown(new)}",
                    flush=True,
                )
    finally:
        databases.close()
        if not args.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"work files kept in {workdir}")
    settings = dataclasses.asdict(sizes) | {
        "backends": backends,
        "scenarios": scenarios,
        "workers": args.workers,
        "server_args": args.server_arg,
    }
    write_json(args.output, figures, settings, started)
    at_start = ", ".join(f"{value:.2f}" for value in started["load_average"])
    print(
        f"\n# All figures\n\nLoad average (1, 5, 15 min): {at_start} at the start, {load_average()} at the end; "
        f"{started['cpus']} CPUs.\n\n{markdown(figures)}\n\nJSON: {args.output}"
    )
    missed = [figure for figure in figures if figure.met is False]
    if missed:
        print(f"{len(missed)} target(s) missed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run every benchmark and print one table of figures and ratios.

    python bench/run.py                 # the sizes of issue 5 (several minutes)
    python bench/run.py --quick         # small sizes: a smoke check, about a minute
    python bench/run.py --only ceiling,throughput
    python bench/run.py --peers --reps 3 [--scale 0.25]   # issue 17: peers side by side (bench/peers.py)
    python bench/run.py --only console --console-jobs 1000000   # the Batch jobs page at 1M jobs, 10M attempts

Progress goes to stderr, the table to stdout. Every ratio is against a peer
or limit measured in this same run (or, where the issue sets one, a fixed
target). See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python bench/run.py` from anywhere

from bench.common import Row, fmt, progress  # noqa: E402

BENCHMARKS = ["ceiling", "throughput", "latency", "dependencies", "console", "postgres"]


def table(rows: list[Row]) -> str:
    header = ["figure", "value", "unit", "vs (same run)", "peer/limit", "ratio", "target", "met"]
    lines = []
    for r in rows:
        if r.value is None:
            lines.append([r.name, r.note, "", "", "", "", "", ""])
            continue
        met = "" if r.met is None else ("yes" if r.met else "NO")
        lines.append([r.name, fmt(r.value), r.unit, r.peer, fmt(r.peer_value) if r.peer else "",
                      f"{r.ratio:.3g}x" if r.ratio is not None else "", r.target, met])
    widths = [max(len(str(line[i])) for line in [header] + lines) for i in range(len(header))]
    right = {1, 4, 5}

    def show(cells):
        return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    out = [show(header), show(["-" * w for w in widths])]
    out += [show(line) for line in lines]
    notes = [f"  {r.name}: {r.note}" for r in rows if r.value is not None and r.note]
    if notes:
        out += ["", "notes:"] + notes
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="batchtui benchmarks (issues 4 and 5)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke check (about a minute)")
    parser.add_argument("--only", metavar="NAME,...", help=f"run only these: {', '.join(BENCHMARKS)}")
    parser.add_argument("--peers", action="store_true",
                        help="issue 17: batchtui against APScheduler, huey, procrastinate, pgqueuer (bench/peers.py)")
    parser.add_argument("--reps", type=int, default=1, help="with --peers: repetitions (medians and ranges)")
    parser.add_argument("--scale", type=float, default=1.0, help="with --peers: multiply the workload sizes")
    parser.add_argument("--peers-only", metavar="PART,...",
                        help="with --peers: only some of limits, sqlite, pg, latency")
    parser.add_argument("--console-jobs", type=int, metavar="N",
                        help="console: N jobs and 10 N task attempts (default 100,000; at 1,000,000 issue 17's "
                             "targets apply and the DataTable peer is not run)")
    parser.add_argument("--console-keep", metavar="FOLDER",
                        help="console: write the database in FOLDER and keep it; a later run of the same size "
                             "uses it again (1,000,000 jobs: 2.7 GB, 80 s to write)")
    args = parser.parse_args(argv)
    if args.console_jobs is not None and args.console_jobs < 1:
        parser.error("--console-jobs must be a positive number of jobs")
    if args.console_keep is not None and Path(args.console_keep).exists() and not Path(args.console_keep).is_dir():
        parser.error(f"--console-keep: {args.console_keep} is a file, not a folder")
    if args.peers:
        from bench.peers import run_peers

        parts = {p.strip() for p in args.peers_only.split(",")} if args.peers_only else None
        print(run_peers(max(1, args.reps), args.scale, parts))
        return 0
    names = BENCHMARKS
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in BENCHMARKS]
        if unknown:
            parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    rows: list[Row] = []
    failed = []
    started = time.perf_counter()
    for name in names:
        progress(f"== {name}")
        try:
            module = importlib.import_module(f"bench.{name}")
            if name == "console":
                rows += module.run(args.quick, jobs=args.console_jobs, keep=args.console_keep)
            else:
                rows += module.run(args.quick)
        # A failed benchmark is a row of the table (traceback above); the others still run.
        except Exception as exc:  # noqa: BLE001
            traceback.print_exc()
            failed.append(name)
            rows.append(Row(f"{name}", None, "", note=f"FAILED: {type(exc).__name__}: {exc}"))
    progress(f"done in {time.perf_counter() - started:.0f} s")
    print(f"batchtui benchmarks ({'quick' if args.quick else 'full'} sizes)")
    print(table(rows))
    missed = [r.name for r in rows if r.met is False]
    if missed:
        print(f"\ntargets missed: {len(missed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

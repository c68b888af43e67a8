"""Run the locustfile headless for a while and read its summary (closed-loop figures,
kept next to the open-loop ones for comparison)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import tempfile
from pathlib import Path

LOCUSTFILE = Path(__file__).with_name("locustfile.py")


def run_locust(port: int, users_file: Path, seconds: int, users: int = 16,
               rate_per_user: float = 50.0, cpus: list[int] | None = None) -> dict[str, object]:
    """`locust --headless` against 127.0.0.1:port; the aggregated row of its stats."""
    with tempfile.TemporaryDirectory() as directory:
        prefix = Path(directory) / "locust"
        env = {**os.environ, "NBO_BENCH_USERS": str(users_file),
               "NBO_BENCH_RATE": str(rate_per_user)}
        arguments = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
                     "-u", str(users), "-r", str(users), "-t", f"{seconds}s",
                     "--host", f"http://127.0.0.1:{port}", "--csv", str(prefix),
                     "--only-summary", "--loglevel", "WARNING"]
        if cpus:
            arguments = ["taskset", "-c", ",".join(map(str, cpus)), *arguments]
        done = subprocess.run(arguments, env=env, capture_output=True, timeout=seconds + 60,
                              check=False)
        stats = prefix.with_name("locust_stats.csv")
        if not stats.exists():
            return {"error": f"locust exited {done.returncode}: "
                             f"{done.stderr.decode(errors='replace')[-500:]}"}
        rows = list(csv.DictReader(stats.open()))
    result: dict[str, object] = {"seconds": seconds, "locust_users": users,
                                 "rate_per_user": rate_per_user}
    for row in rows:
        name = "all" if row["Name"] == "Aggregated" else f"{row['Type']} {row['Name']}"
        result[name] = {"requests": int(row["Request Count"]),
                        "failures": int(row["Failure Count"]),
                        "rps": round(float(row["Requests/s"]), 1),
                        "p50_ms": _number(row["50%"]), "p95_ms": _number(row["95%"]),
                        "p99_ms": _number(row["99%"]),
                        "max_ms": _number(row["Max Response Time"])}
    return result


def _number(text: str) -> float | None:
    try:
        return round(float(text), 2)
    except ValueError:
        return None

"""Locust users for nbo's serving API: the realistic mix (mostly decisions, some blocks,
live events and feedback), for exploring by hand or in the web UI.

    locust -f benchmarks/serving/locustfile.py --host http://127.0.0.1:8000

Locust is closed-loop (each user waits for its answer) and costly per request, so its
percentiles hide queueing; the figures to quote come from the open-loop client
(`python -m benchmarks.serving`). Users are read from NBO_BENCH_USERS (a file of user
ids, one a line; the benchmark writes `users.txt` next to its cached world), else the
newest cached world's. NBO_BENCH_RATE caps each locust user's requests per second.
"""

from __future__ import annotations

import os
import random
import uuid
from datetime import UTC, datetime
from pathlib import Path

from locust import FastHttpUser, constant_throughput, task

CACHE = Path(".nbo/bench/serving")
CATEGORIES = ("coffee", "snacks", "skincare", "oral_care", "beverages")


def _user_ids() -> list[str]:
    configured = os.environ.get("NBO_BENCH_USERS")
    found = [Path(configured)] if configured else sorted(
        CACHE.glob("*/users.txt"), key=lambda path: path.stat().st_mtime)
    if not found or not found[-1].exists():
        raise SystemExit("no user ids: run `python -m benchmarks.serving --quick` once, or "
                         "set NBO_BENCH_USERS to a file of user ids")
    return found[-1].read_text().split()


USERS = _user_ids()


class CrmCaller(FastHttpUser):
    """A CRM tool asking for decisions and blocks, and a site sending events and feedback."""

    wait_time = constant_throughput(float(os.environ.get("NBO_BENCH_RATE", "50")))

    def on_start(self) -> None:
        self.decisions: list[str] = []
        self.campaign = f"locust-{uuid.uuid4().hex[:8]}"

    @task(80)
    def decision(self) -> None:
        user = random.choice(USERS)
        response = self.client.get(f"/v1/users/{user}/decision", name="/v1/users/[id]/decision")
        if response.status_code == 200 and len(self.decisions) < 100:
            self.decisions.append(str(response.json()["decision_id"]))

    @task(5)
    def block(self) -> None:
        user = random.choice(USERS)
        self.client.get(f"/v1/users/{user}/blocks/offer?campaign_id={self.campaign}",
                        name="/v1/users/[id]/blocks/offer")

    @task(10)
    def event(self) -> None:
        event = {"user_id": random.choice(USERS), "ts": datetime.now(UTC).isoformat(),
                 "event_type": "view", "event_id": f"locust-{uuid.uuid4().hex}",
                 "category": random.choice(CATEGORIES), "channel": "web"}
        self.client.post("/v1/events", json={"events": [event]})

    @task(5)
    def feedback(self) -> None:
        if self.decisions:
            self.client.post("/v1/feedback", json={"decision_id": random.choice(self.decisions),
                                                   "type": "open"})

"""How soon a live event shows in the next decision (target: 5 ms).

One client, one request at a time, so nothing queues: POST a view in a category to
`/v1/events`, then GET the user's decision with `explain=true`, and check the category now
leads the recently browsed ones the decision read. Timed from sending the event to the
decision's answer, with the two requests also timed apart.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from benchmarks.common import percentiles_us
from benchmarks.serving.servers import Http, Server


def event_to_decision(server: Server, users: Sequence[str], categories: Sequence[str],
                      samples: int = 200) -> dict[str, Any]:
    http = Http(server.port)
    total, event, decision = [], [], []
    visible = 0
    try:
        for i in range(samples):
            user, category = users[i % len(users)], categories[i % len(categories)]
            view = {"user_id": user, "event_type": "view", "category": category,
                    "ts": datetime.now(UTC).isoformat(), "event_id": uuid.uuid4().hex}
            began = time.perf_counter_ns()
            posted, _ = http.request("POST", "/v1/events", {"events": [view]})
            applied = time.perf_counter_ns()
            status, body = http.request("GET", f"/v1/users/{user}/decision?explain=true")
            answered = time.perf_counter_ns()
            if posted != 200 or status != 200:
                raise RuntimeError(f"event {posted}, decision {status}: {body[:200]!r}")
            recent = orjson.loads(body)["explanation"]["features"]["recent_categories"]
            visible += bool(recent) and recent[0] == category
            total.append(answered - began)
            event.append(applied - began)
            decision.append(answered - applied)
    finally:
        http.close()
    return {"samples": samples, "visible_share": visible / samples,
            "event_then_decision_us": percentiles_us(total),
            "event_us": percentiles_us(event), "decision_us": percentiles_us(decision)}

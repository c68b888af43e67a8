"""The requests of each scenario, built as HTTP/1.1 bytes before a step starts.

A scenario is a function of (how many requests, a step number) giving that many request
bytes; building them first keeps the client's per-request work to a socket write.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

import orjson

from benchmarks.serving.world import Item

Build = Callable[[int, int], list[bytes]]
"""(count, step) -> request bytes; the step number keeps ids (campaigns, events) fresh."""


def http_request(method: str, target: str, host: str, body: bytes | None = None) -> bytes:
    """One HTTP/1.1 keep-alive request."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


def decision_target(user_id: str) -> str:
    return f"/v1/users/{quote(user_id, safe='')}/decision"


@dataclass(frozen=True)
class Scenarios:
    """Request builders over a world's users and items, for one server address."""

    host: str
    users: Sequence[str]
    items: Sequence[Item]
    seed: int = 7
    batch_size: int = 1000

    def _rng(self, step: int, salt: str) -> random.Random:
        return random.Random(f"{self.seed}:{step}:{salt}")

    def decision(self, count: int, step: int) -> list[bytes]:
        """GET one user's decision, users drawn uniformly."""
        rng = self._rng(step, "decision")
        return [http_request("GET", decision_target(rng.choice(self.users)), self.host)
                for _ in range(count)]

    def batch(self, count: int, step: int) -> list[bytes]:
        """POST /v1/decisions for `batch_size` distinct users."""
        rng = self._rng(step, "batch")
        size = min(self.batch_size, len(self.users))
        return [http_request("POST", "/v1/decisions", self.host, orjson.dumps(
            {"user_ids": rng.sample(list(self.users), size)})) for _ in range(count)]

    def block(self, count: int, step: int) -> list[bytes]:
        """GET the offer block of a campaign new to this step (first fetch per user decides,
        later ones are answered from the remembered block)."""
        rng = self._rng(step, "block")
        campaign = f"bench-{step}-{uuid.uuid4().hex[:8]}"
        return [http_request("GET", f"/v1/users/{quote(rng.choice(self.users), safe='')}"
                             f"/blocks/offer?campaign_id={campaign}", self.host)
                for _ in range(count)]

    def event(self, count: int, step: int) -> list[bytes]:
        """POST one live event (a view or an add to cart of a world item) per request."""
        rng = self._rng(step, "event")
        run = uuid.uuid4().hex[:8]
        now = datetime.now(UTC).isoformat()
        requests = []
        for index in range(count):
            item = rng.choice(self.items)
            event = {"user_id": rng.choice(self.users), "ts": now,
                     "event_type": "view" if rng.random() < 0.8 else "add_to_cart",
                     "event_id": f"bench-{run}-{index}", "item_id": item.item_id,
                     "category": item.category, "brand": item.brand, "price": item.price,
                     "channel": "web"}
            if event["event_type"] == "add_to_cart":
                event["quantity"] = 1
            requests.append(http_request("POST", "/v1/events", self.host,
                                         orjson.dumps({"events": [event]})))
        return requests

    def feedback(self, decisions: Sequence[str]) -> Build:
        """POST /v1/feedback (opens and clicks) on decisions made before the step."""
        def build(count: int, step: int) -> list[bytes]:
            rng = self._rng(step, "feedback")
            return [http_request("POST", "/v1/feedback", self.host, orjson.dumps(
                {"decision_id": rng.choice(decisions), "type": rng.choice(("open", "click"))}))
                for _ in range(count)]
        return build


MIX = {"decision": 0.80, "block": 0.05, "event": 0.10, "feedback": 0.05}
"""The realistic mix: mostly decisions, some blocks, live events and feedback."""


def mixed(parts: Mapping[str, Build], weights: Mapping[str, float], seed: int = 11) -> Build:
    """Requests drawn from several scenarios in proportion to `weights`, interleaved."""
    names = sorted(weights)

    def build(count: int, step: int) -> list[bytes]:
        rng = random.Random(f"{seed}:{step}")
        picks = rng.choices(names, weights=[weights[name] for name in names], k=count)
        pools = {name: iter(parts[name](picks.count(name), step)) for name in names}
        return [next(pools[name]) for name in picks]

    return build

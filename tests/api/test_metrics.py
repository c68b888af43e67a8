"""Request timings are labelled by route template; the registry renders for Prometheus."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi import FastAPI, Response
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.errors import install_error_handlers
from api.limits import BodySizeLimit
from api.metrics import MULTIPROCESS_DIR, UNMATCHED, Metrics, MetricsMiddleware

TEMPLATE = "/v1/users/{user_id}/decision"


def make_app(metrics: Metrics) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    @app.get(TEMPLATE)
    async def decision(user_id: str) -> dict[str, str]:
        metrics.decisions.labels(source="model").inc()
        return {"user_id": user_id}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("broken")

    @app.get("/metrics")
    async def metrics_endpoint() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    return app


def request_counts(metrics: Metrics) -> dict[tuple[str, str, str], float]:
    """`nbo_request_seconds_count` by (route, method, status), parsed from render()."""
    body, _ = metrics.render()
    counts = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == "nbo_request_seconds_count":
                labels = sample.labels
                counts[labels["route"], labels["method"], labels["status"]] = sample.value
    return counts


def test_requests_are_labelled_by_route_template() -> None:
    metrics = Metrics()
    client = TestClient(make_app(metrics))
    for user in ("u1", "u2", "u3"):
        assert client.get(f"/v1/users/{user}/decision").status_code == 200

    assert request_counts(metrics)[TEMPLATE, "GET", "200"] == 3
    body, _ = metrics.render()
    text = body.decode()
    assert (f'nbo_request_seconds_bucket{{le="1.0",method="GET",route="{TEMPLATE}",'
            'status="200"} 3.0') in text
    assert "u1" not in text
    assert 'nbo_decisions_total{source="model"} 3.0' in text


def test_unknown_paths_are_unmatched() -> None:
    metrics = Metrics()
    client = TestClient(make_app(metrics))
    for n in range(5):
        assert client.get(f"/no/such/{n}").status_code == 404
    counts = request_counts(metrics)
    assert counts[UNMATCHED, "GET", "404"] == 5
    assert not any(route.startswith("/no/") for route, _, _ in counts)


def test_errors_and_odd_methods_are_counted() -> None:
    metrics = Metrics()
    client = TestClient(make_app(metrics), raise_server_exceptions=False)
    assert client.get("/boom").status_code == 500
    assert client.request("BREW", "/boom").status_code == 405
    counts = request_counts(metrics)
    assert counts["/boom", "GET", "500"] == 1
    assert counts["/boom", "other", "405"] == 1


def test_metrics_endpoint_serves_the_text_format() -> None:
    metrics = Metrics()
    client = TestClient(make_app(metrics))
    client.get("/v1/users/u1/decision")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "# TYPE nbo_request_seconds histogram" in response.text
    assert 'le="0.0005"' in response.text


def test_every_metric_is_exported() -> None:
    metrics = Metrics()
    metrics.stages.labels(stage="score").observe(0.0003)
    metrics.offers_chosen.labels(offer_id="spring10").inc()
    metrics.redis_errors.inc()
    metrics.events.labels(outcome="duplicate").inc(2)
    text = metrics.render()[0].decode()
    assert 'nbo_decision_stage_seconds_count{stage="score"} 1.0' in text
    assert 'nbo_offers_chosen_total{offer_id="spring10"} 1.0' in text
    assert "nbo_redis_errors_total 1.0" in text
    assert 'nbo_events_total{outcome="duplicate"} 2.0' in text


def test_registries_are_independent() -> None:
    first, second = Metrics(), Metrics()
    first.redis_errors.inc()
    assert "nbo_redis_errors_total 1.0" in first.render()[0].decode()
    assert "nbo_redis_errors_total 0.0" in second.render()[0].decode()


def test_several_worker_processes_add_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As under `nbo serve --workers N`: each process counts into the shared directory."""
    record = ("from api.metrics import Metrics; m = Metrics(); "
              "m.decisions.labels(source='model').inc(); "
              "m.requests.labels('/v1/users/{user_id}/decision', 'GET', '200').observe(0.002)")
    for _ in range(2):
        subprocess.run([sys.executable, "-c", record], check=True,
                       env={**os.environ, MULTIPROCESS_DIR: str(tmp_path)})
    monkeypatch.setenv(MULTIPROCESS_DIR, str(tmp_path))
    body, _ = Metrics().render()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(body.decode())
               for s in family.samples}
    assert samples["nbo_decisions_total", (("source", "model"),)] == 2
    assert samples["nbo_request_seconds_count", (("method", "GET"), (
        "route", "/v1/users/{user_id}/decision"), ("status", "200"))] == 2


def test_requests_refused_before_routing_count_under_their_route() -> None:
    """A body over the limit is refused before FastAPI routes it: counted under the route it
    was for (by its path alone when the route takes another method), not as unmatched."""
    metrics = Metrics()
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/v1/decisions")
    async def batch() -> dict[str, str]:
        return {}

    app.add_middleware(BodySizeLimit, max_bytes=1024)
    app.add_middleware(MetricsMiddleware, metrics=metrics, routes=app.routes)
    client = TestClient(app)
    for method in ("POST", "PUT"):
        assert client.request(method, "/v1/decisions", content=b"x" * 2048).status_code == 413
    counts = request_counts(metrics)
    assert counts["/v1/decisions", "POST", "413"] == counts["/v1/decisions", "PUT", "413"] == 1
    assert client.post("/nowhere", content=b"x" * 2048).status_code == 413
    assert request_counts(metrics)[UNMATCHED, "POST", "413"] == 1


def test_the_docs_are_counted_under_their_own_routes(api: TestClient) -> None:
    """FastAPI's docs routes set no route in the scope: they were counted as unmatched."""
    def count(route: str) -> float:
        text = api.get("/metrics").text
        line = next((line for line in text.splitlines() if line.startswith(
            f'nbo_request_seconds_count{{method="GET",route="{route}",status="200"}}')), None)
        return 0.0 if line is None else float(line.rsplit(" ", 1)[1])

    before = {route: count(route) for route in ("/openapi.json", "/docs", UNMATCHED)}
    for route in ("/openapi.json", "/docs"):
        assert api.get(route).status_code == 200
    assert {route: count(route) - before[route] for route in before} == {
        "/openapi.json": 1, "/docs": 1, UNMATCHED: 0}

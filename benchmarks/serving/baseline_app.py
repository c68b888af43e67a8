"""The baseline: a bare FastAPI app on nbo's server stack doing one Redis GET per request.

    python -m benchmarks.serving.baseline_app --port 8001 --workers 1   # NBO_REDIS_URL set

Same uvicorn settings and workers as `nbo serve` (loop and HTTP parser left to auto: uvloop and
httptools; warning logs, no access log), the same Redis server and the same kind of client
as the API (redis-py with hiredis, no retries, a short timeout), and a sync route as nbo's
are, so the difference to nbo is nbo's own work.
"""

from __future__ import annotations

import argparse
import os

import orjson
import redis
import uvicorn
from fastapi import FastAPI, Response
from redis.backoff import NoBackoff
from redis.retry import Retry

from nbo.workers import serve_workers

APP = "benchmarks.serving.baseline_app:create_app"
KEY = "bench:v1:baseline:value"
VALUE_BYTES = 350  # about one user's packed feature record


def _client() -> redis.Redis:
    url = os.environ.get("NBO_REDIS_URL")
    if not url:
        raise SystemExit("set NBO_REDIS_URL to the Redis server nbo uses")
    return redis.Redis.from_url(url, socket_timeout=0.25, socket_connect_timeout=0.25,
                                retry=Retry(NoBackoff(), 0), retry_on_timeout=False)


def create_app() -> FastAPI:
    client = _client()
    client.set(KEY, bytes(range(256)) + bytes(VALUE_BYTES - 256), nx=True)
    app = FastAPI(title="nbo serving baseline")

    @app.get("/v1/users/{user_id}/decision")
    def decision(user_id: str) -> Response:
        value: bytes | None = client.get(KEY)  # type: ignore[assignment]
        body = orjson.dumps({"user_id": user_id, "bytes": len(value or b"")})
        return Response(body, media_type="application/json")

    @app.get("/readyz")
    def ready() -> Response:
        client.ping()
        return Response(b'{"ready":true}', media_type="application/json")

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--workers", type=int, default=1)
    arguments = parser.parse_args()
    if arguments.workers > 1:  # as `nbo serve`: one socket per worker (nbo/workers.py)
        serve_workers(APP, arguments.host, arguments.port, arguments.workers)
    else:
        uvicorn.run(APP, factory=True, host=arguments.host, port=arguments.port,
                    log_level="warning", access_log=False)


if __name__ == "__main__":
    main()

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from api.app import create_app
from nbo.redis_server import EmbeddedRedis, connect, embedded_server, redis_url
from nbo.settings import Settings, get_settings


def test_embedded_server_keeps_writes_across_a_restart(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path)
    server.start()
    client = redis.Redis.from_url(server.url)
    client.set("nbo:test:kept", "yes")
    client.close()
    server.stop()
    assert not server.is_running()

    again = EmbeddedRedis(tmp_path)
    again.start()
    try:
        assert redis.Redis.from_url(again.url).get("nbo:test:kept") == b"yes"
        assert (tmp_path / "redis" / "appendonlydir").exists() or any(
            (tmp_path / "redis").glob("nbo.aof*"))
    finally:
        again.stop()


def test_a_second_process_shares_the_running_server(tmp_path: Path) -> None:
    first = EmbeddedRedis(tmp_path)
    first.start()
    try:
        second = EmbeddedRedis(tmp_path)
        second.start()
        assert second.is_running()
        assert not second.owned
        assert first.owned
    finally:
        first.stop()


def test_a_server_that_stalls_is_not_started_again_beside_itself(tmp_path: Path) -> None:
    """A stall past the 1 s ping (a long command, a slow fsync) read as no server: the API's
    keeper started a second one on the same socket and AOF, and writes split between them."""
    first = EmbeddedRedis(tmp_path)
    first.start()
    stalling = redis.Redis.from_url(first.url)
    try:
        stall = threading.Thread(target=stalling.execute_command, args=("DEBUG", "SLEEP", "2.5"))
        stall.start()
        time.sleep(0.2)
        second = EmbeddedRedis(tmp_path)
        second.start()
        assert not second.owned  # nothing spawned
        stall.join()
        assert redis.Redis.from_url(first.url).ping()
    finally:
        stalling.close()
        first.stop()


def test_long_data_dirs_get_a_short_socket(tmp_path: Path) -> None:
    deep = tmp_path / ("x" * 60) / ("y" * 60)
    server = EmbeddedRedis(deep)
    assert len(str(server.socket_path)) <= 100
    server.start()
    try:
        assert server.is_running()
    finally:
        server.stop()


def test_without_a_url_nbo_starts_its_own_server_under_the_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("NBO_REDIS_URL", raising=False)
    monkeypatch.setenv("NBO_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    url = redis_url()
    assert url.startswith("unix://")
    assert str((tmp_path / "data").resolve()) in url
    client = connect()
    try:
        assert client.ping()
    finally:
        client.close()
        from nbo.redis_server import embedded_server

        embedded_server(tmp_path / "data").stop()


def test_a_configured_url_is_used_as_is(monkeypatch: pytest.MonkeyPatch, redis_url: str,
                                        tmp_path: Path) -> None:
    monkeypatch.setenv("NBO_REDIS_URL", redis_url)
    get_settings.cache_clear()
    assert get_settings().redis_url == redis_url
    client = connect()
    try:
        client.set("nbo:test:configured", "1")
        assert client.get("nbo:test:configured") == b"1"
    finally:
        client.delete("nbo:test:configured")
        client.close()
    assert not (tmp_path / "nbo-data" / "redis").exists()


def test_each_test_starts_on_an_empty_database(redis_client: redis.Redis) -> None:
    assert redis_client.dbsize() == 0
    redis_client.set("nbo:test:leftover", "1")


def test_the_api_starts_the_embedded_server_again_once_its_starter_stopped_it(
        tmp_path: Path) -> None:
    """`nbo train` beside a running API started the server and stopped it on exit: the API
    stayed degraded for good."""
    settings = Settings(data_dir=tmp_path / "data", models_dir=tmp_path / "models",
                        redis_retry_after_s=0.2)
    starter = EmbeddedRedis(settings.data_dir)  # the other command's, which owns it
    starter.start()
    with TestClient(create_app(settings)) as api:
        assert api.get("/v1/users/u1/decision").json()["degraded"] is False
        starter.stop()  # it exits
        assert api.get("/v1/users/u1/decision").json()["degraded"] is True
        deadline = time.monotonic() + 10
        while starter.is_running() is False and time.monotonic() < deadline:
            time.sleep(0.1)  # started again, by the API
        assert starter.is_running() and not starter.owned
        time.sleep(0.3)  # past redis_retry_after_s
        assert api.get("/v1/users/u1/decision").json()["degraded"] is False
    embedded_server(settings.data_dir).stop()  # the one the API started


def test_sigterm_to_a_one_worker_serve_stops_the_embedded_server(tmp_path: Path) -> None:
    """uvicorn raises SIGTERM again after its graceful shutdown: the process died of it,
    and the server it had started was left running."""
    environment = {**os.environ, "NBO_DATA_DIR": str(tmp_path / "data"),
                   "NBO_MODELS_DIR": str(tmp_path / "models")}
    environment.pop("NBO_REDIS_URL", None)
    serve = subprocess.Popen([sys.executable, "-m", "nbo.cli", "serve", "--port", "18431"],
                             env=environment, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    server = EmbeddedRedis(tmp_path / "data")
    try:
        deadline = time.monotonic() + 30
        while not server.is_running() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert server.is_running()
        time.sleep(1.0)  # uvicorn's signal handlers in place
        serve.send_signal(signal.SIGTERM)
        serve.wait(30)
        assert not server.is_running()
    finally:
        if serve.poll() is None:
            serve.kill()
        if server.is_running():
            redis.Redis.from_url(server.url).shutdown(nosave=True)

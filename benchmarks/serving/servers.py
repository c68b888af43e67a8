"""The processes under test: nbo's API, the baseline app and the Redis server they share,
started as subprocesses pinned to chosen CPUs, with their CPU time read by psutil."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import psutil
import redis

from nbo.redis_server import EmbeddedRedis

READY_TIMEOUT_S = 120.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def pin_process(cpus: Sequence[int] | None, pid: int | None = None) -> None:
    """Pin every thread of a process (default: this one) to `cpus` (None: all CPUs)."""
    wanted = set(cpus) if cpus else set(range(os.cpu_count() or 1))
    for thread in os.listdir(f"/proc/{pid or 'self'}/task"):
        try:
            os.sched_setaffinity(int(thread), wanted)
        except OSError:
            continue  # a thread that just ended


@contextmanager
def pinned(cpus: Sequence[int] | None) -> Iterator[None]:
    """Processes started inside run on `cpus` (a child inherits its parent thread's CPUs)."""
    before = os.sched_getaffinity(0)
    if cpus:
        os.sched_setaffinity(0, set(cpus))
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its live descendants."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += float(times.user + times.system)
    return total


class Http:
    """A small keep-alive client for setup and scraping (not for load)."""

    def __init__(self, port: int, timeout_s: float = 30.0) -> None:
        self.port = port
        self._connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)

    def request(self, method: str, path: str, body: object | None = None) -> tuple[int, bytes]:
        payload = None if body is None else orjson.dumps(body)
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        for attempt in (0, 1):
            try:
                self._connection.request(method, path, payload, headers)
                response = self._connection.getresponse()
                return response.status, response.read()
            except (http.client.HTTPException, ConnectionError):
                self._connection.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def json(self, method: str, path: str, body: object | None = None) -> object:
        status, content = self.request(method, path, body)
        if status >= 400:
            raise RuntimeError(f"{method} {path}: HTTP {status}: {content[:300]!r}")
        return orjson.loads(content)

    def close(self) -> None:
        self._connection.close()


@dataclass
class Server:
    """A server subprocess (and the workers it forks) on a local port."""

    name: str
    workers: int
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    cpus: list[int] | None
    started_s: float = field(default=0.0)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.process.pid)

    def wait_idle(self, timeout_s: float = 60.0, share: float = 0.1) -> float:
        """Wait until the server uses less than `share` of a CPU (work left from an earlier
        step would be charged to the next); the seconds waited."""
        began = time.monotonic()
        used = self.cpu_seconds()
        while time.monotonic() - began < timeout_s:
            time.sleep(0.1)
            now = self.cpu_seconds()
            if now - used < share * 0.1:
                break
            used = now
        return round(time.monotonic() - began, 2)

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        began = time.monotonic()
        deadline = began + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}: "
                                   f"{self._log_tail()}")
            try:
                status, _ = Http(self.port, timeout_s=2.0).request("GET", "/readyz")
            except OSError:
                status = 0
            if status == 200:
                self.started_s = round(time.monotonic() - began, 2)
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} was not ready in {timeout_s:.0f}s: {self._log_tail()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def _log_tail(self) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text[-2000:]


def _spawn(name: str, arguments: list[str], env: dict[str, str], workers: int, port: int,
           cpus: list[int] | None, log: Path) -> Server:
    log.parent.mkdir(parents=True, exist_ok=True)
    with pinned(cpus), open(log, "ab") as output:
        process = subprocess.Popen(arguments, env=env, stdout=output, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    return Server(name, workers, port, process, log, cpus)


def nbo_environment(data_dir: Path, **settings: str) -> dict[str, str]:
    """This environment without the caller's own NBO_ settings (API keys, another Redis),
    with a data directory of the benchmark's."""
    kept = {name: value for name, value in os.environ.items() if not name.startswith("NBO_")}
    return kept | {"NBO_DATA_DIR": str(data_dir)} | {
        f"NBO_{name.upper()}": value for name, value in settings.items()}


def start_nbo(models_dir: Path, data_dir: Path, workers: int, cpus: list[int] | None,
              log: Path, settings: Mapping[str, str] | None = None,
              environment: Mapping[str, str] | None = None) -> Server:
    """`nbo serve` with its own data directory (it finds the embedded Redis running),
    `settings` (name -> value: NBO_NAME in its environment) and other `environment`
    variables."""
    port = free_port()
    env = nbo_environment(data_dir, **(settings or {})) | dict(environment or {})
    arguments = [sys.executable, "-m", "nbo.cli", "serve", "--models", str(models_dir),
                 "--port", str(port), "--workers", str(workers)]
    return _spawn("nbo", arguments, env, workers, port, cpus, log)


def start_baseline(redis_url: str, workers: int, cpus: list[int] | None, log: Path) -> Server:
    port = free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith("NBO_")}
    env["NBO_REDIS_URL"] = redis_url
    arguments = [sys.executable, "-m", "benchmarks.serving.baseline_app", "--port", str(port),
                 "--workers", str(workers)]
    return _spawn("baseline", arguments, env, workers, port, cpus, log)


class BenchRedis:
    """The embedded Redis of a benchmark world, restored from a snapshot for each run."""

    AOF = "nbo.aof"

    def __init__(self, data_dir: Path) -> None:
        self.server = EmbeddedRedis(data_dir)
        self.pid = 0

    @property
    def url(self) -> str:
        return self.server.url

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def start(self, restore: Path | None = None, cpus: list[int] | None = None) -> None:
        """Start it (stopping one left running by an earlier run), from `restore`'s data."""
        if self.server.is_running():
            try:
                self.client().shutdown(nosave=True)
            except redis.ConnectionError:
                pass  # it closes the connection as it goes
            self._wait_gone()
        if restore is not None:
            self.server.directory.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(restore, self.server.directory / self.AOF)
        with pinned(cpus):
            self.server.start()
        self.pid = int(self.client().info("server")["process_id"])

    def _wait_gone(self, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.server.is_running() and time.monotonic() < deadline:
            time.sleep(0.05)

    def snapshot(self, to: Path) -> None:
        """Compact the append-only file, stop the server, keep a copy of the file."""
        client = self.client()
        client.bgrewriteaof()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            info = client.info("persistence")
            if not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]:
                break
            time.sleep(0.1)
        self.stop()
        shutil.copyfile(self.server.directory / self.AOF, to)

    def stop(self) -> None:
        self.server.stop()
        self.pid = 0

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.pid) if self.pid else 0.0

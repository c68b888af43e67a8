"""`nbo serve --workers N`: N uvicorn processes, each listening on its own socket bound to
the same port (SO_REUSEPORT), so the kernel spreads new connections evenly over them.

With one socket shared by every worker (uvicorn's own `workers=N`), whichever worker wakes
first accepts, and a burst of new connections, such as a client opening its keep-alive
pool, lands almost all on one worker: 15 or 16 of a benchmark client's 16 connections
(docs/benchmarks.md), the other worker left nearly idle. Spreading connections over
sockets that share a port is Linux's behaviour (3.9 and later); BSD and macOS hand them
all to one socket.

The parent only supervises: it refuses a port in use before starting any worker (their
sockets would join another `nbo serve --workers`'s, sharing its connections), restarts a
worker that dies, stops all of them on SIGINT or SIGTERM, and gives up when a worker dies
within `STARTUP_S` of starting (an app that fails to load), rather than restarting it
forever.
"""

from __future__ import annotations

import errno
import logging
import multiprocessing
import signal
import socket
import time
from multiprocessing.process import BaseProcess
from types import FrameType

import uvicorn

from nbo.errors import NboError

logger = logging.getLogger(__name__)
STARTUP_S = 10.0


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port) that other processes may bind too (SO_REUSEPORT)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def ensure_free(host: str, port: int) -> None:
    """Raise WorkerFailed when (host, port) is in use: bound without SO_REUSEPORT, the
    probe fails on a port another `nbo serve --workers` holds too, whose sockets ours would
    otherwise join, silently taking part of its connections."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except socket.gaierror as error:
            raise WorkerFailed(f"cannot listen on {host!r}: {error.strerror}; give an address "
                               "or a name this machine resolves as --host") from error
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise WorkerFailed(f"cannot listen on {host}:{port}: {error.strerror}") from error
            raise WorkerFailed(f"{host}:{port} is in use ({error.strerror}): stop what "
                               "serves there, or choose another --port") from error


def _worker(app: str, host: str, port: int) -> None:
    config = uvicorn.Config(app, factory=True, log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[listening_socket(host, port)])


class WorkerFailed(NboError):
    exit_code = 4


def serve_workers(app: str, host: str, port: int, workers: int) -> None:
    """Run `workers` processes serving the app factory `app` until SIGINT or SIGTERM."""
    ensure_free(host, port)
    context = multiprocessing.get_context("spawn")
    stopping = False

    def stop(signum: int, _: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    def start() -> tuple[BaseProcess, float]:
        process = context.Process(target=_worker, args=(app, host, port), daemon=False)
        process.start()
        return process, time.monotonic()

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGINT,
                                                                   signal.SIGTERM)}
    running = [start() for _ in range(workers)]
    try:
        while not stopping:
            time.sleep(0.2)
            for index, (process, started) in enumerate(running):
                if process.is_alive() or stopping:
                    continue
                if time.monotonic() - started < STARTUP_S:
                    raise WorkerFailed(f"a worker exited with code {process.exitcode} while "
                                       "starting (see its log above)")
                logger.warning("worker %s exited with code %s; starting another",
                               process.pid, process.exitcode)
                running[index] = start()
    finally:
        for process, _ in running:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn finishes the requests in flight
        for process, _ in running:
            process.join()
        for signum, handler in previous.items():
            signal.signal(signum, handler)

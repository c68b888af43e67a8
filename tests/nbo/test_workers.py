"""`nbo serve --workers N` (nbo/workers.py): each worker has its own socket on the port."""

from __future__ import annotations

import http.client
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from nbo.workers import WorkerFailed, listening_socket, serve_workers

APP = "tests.nbo.pid_app:create"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def port() -> int:
    return _free_port()


@pytest.fixture
def supervisor(port: int) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen([sys.executable, "-c", (
        "from nbo.workers import serve_workers; "
        f"serve_workers({APP!r}, '127.0.0.1', {port}, 2)")])
    yield process
    if process.poll() is None:
        process.kill()
        process.wait()


def _answering_pid(port: int, deadline: float) -> int:
    while True:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request("GET", "/")
            return int(connection.getresponse().read())
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
        finally:
            connection.close()


def test_new_connections_are_spread_over_the_workers(
        supervisor: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 30
    first = _answering_pid(port, deadline)
    pids = {first}
    while len(pids) < 2 and time.monotonic() < deadline:  # both workers listening
        pids.add(_answering_pid(port, deadline))
    # a burst of connections opened at once, as a client's keep-alive pool: each worker
    # gets some (all 32 on one socket by the port's hash: a chance of 2 in 2**32)
    connections = [http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                   for _ in range(32)]
    for connection in connections:
        connection.connect()
    answered = []
    for connection in connections:
        connection.request("GET", "/")
        answered.append(int(connection.getresponse().read()))
        connection.close()
    assert len(set(answered)) == 2 and set(answered) == pids
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=30) == 0
    with pytest.raises(ConnectionRefusedError):
        _answering_pid(port, time.monotonic())


def test_workers_that_cannot_start_stop_the_supervisor(port: int) -> None:
    with pytest.raises(WorkerFailed, match="while starting"):
        serve_workers("tests.nbo.no_such_module:app", "127.0.0.1", port, 2)


def test_a_port_in_use_is_refused_before_any_worker_starts(port: int) -> None:
    with socket.socket() as taken:  # bound without SO_REUSEPORT: no worker can share it
        taken.bind(("127.0.0.1", port))
        taken.listen()
        with pytest.raises(WorkerFailed, match="is in use"):
            serve_workers(APP, "127.0.0.1", port, 2)


def test_a_port_another_supervisor_serves_is_refused_not_shared(port: int) -> None:
    """Its workers' sockets let any process of the same user bind the port too: a second
    `nbo serve --workers` started beside it and took half of its connections."""
    with listening_socket("127.0.0.1", port) as served:  # as another supervisor's worker
        served.listen()
        with pytest.raises(WorkerFailed, match="is in use"):
            serve_workers(APP, "127.0.0.1", port, 2)


def test_a_host_that_does_not_resolve_is_not_called_a_port_in_use(port: int) -> None:
    with pytest.raises(WorkerFailed, match="cannot listen on 'no-such-host.invalid'"):
        serve_workers(APP, "no-such-host.invalid", port, 2)

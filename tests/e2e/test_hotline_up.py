"""`make run` as a user runs it: `hotline up --demo` with a relative data directory, then Ctrl-C."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tools.embedded_postgres import data_dir_for

pytestmark = pytest.mark.e2e
HOTLINE = Path(sys.executable).with_name("hotline")


def test_hotline_up_runs_the_demo_on_an_embedded_redis_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    # embedded Redis and PostgreSQL, as on a fresh machine
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env["HOTLINE_BASE_PORT"] = "0"  # a free block of ports
    process = subprocess.Popen(
        [str(HOTLINE), "up", "--demo", "5", "--data-dir", ".hotline/redis"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + 180
    try:
        for line in process.stdout:
            seen.append(line)
            if "Press Ctrl-C to stop." in line or time.monotonic() > deadline:
                break
        output = "".join(seen)
        assert "Press Ctrl-C to stop." in output, output
        assert "All 5 tickets dispatched" in output, output
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()  # closes the pipe whatever happened
        pg_data = data_dir_for((tmp_path / ".hotline" / "redis" / "postgres").resolve())
        if not pg_data.is_relative_to(tmp_path):  # root: kept outside pytest's private tree
            shutil.rmtree(pg_data, ignore_errors=True)
    assert process.returncode == 0, output + rest
    assert (tmp_path / ".hotline" / "redis" / "appendonly.aof").exists() or any(
        (tmp_path / ".hotline" / "redis").glob("appendonly*")
    ), "the embedded Redis kept its data in the given directory"

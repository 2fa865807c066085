"""Signed-webhook throughput of intake against a minimal starlette + redis-py baseline, in the same run.

Both servers run as one uvicorn worker process each on one embedded Redis. The baseline only validates
the body with the same pydantic model and does the same XADD; intake also checks the signature, the
rate limit, hashes the caller, de-duplicates and writes the ticket projection (one Lua script).
The load generator is a separate process speaking raw HTTP/1.1 over keep-alive connections (so the
client costs little CPU), with a fresh call id and signature on every request. Runs are interleaved;
the medians and the ratio are printed.

    .venv/bin/python bench/intake_webhook.py [--seconds 8] [--rounds 3] [--connections 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import psutil
import redis as sync_redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from services.intake.settings import DEV_SECRET  # noqa: E402
from shared.standard_webhooks import signed_headers  # noqa: E402
from tools.embedded import EmbeddedRedis, free_port  # noqa: E402

PATH = "/v1/webhooks/telephony"


def baseline_app(redis_url: str) -> object:
    """The reference: validate with the same model, XADD the body, answer 202."""
    from redis.asyncio import Redis
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from services.intake.models import TelephonyCall

    redis = Redis.from_url(redis_url)

    async def hook(request: Request) -> Response:
        body = await request.body()
        call = TelephonyCall.model_validate_json(body)
        await redis.xadd("bench.baseline", {"__data__": body}, maxlen=1_000_000, approximate=True)
        return JSONResponse({"ticket_id": call.call_id}, status_code=202)

    return Starlette(routes=[Route(PATH, hook, methods=["POST"])])


def serve_baseline(port: int, redis_url: str) -> None:
    import uvicorn

    uvicorn.run(baseline_app(redis_url), host="127.0.0.1", port=port, log_level="warning", access_log=False)


def start(kind: str, port: int, redis_url: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "HOTLINE_PORT": str(port),
        "HOTLINE_LOG_LEVEL": "ERROR",
        "HOTLINE_RATE_LIMITS": json.dumps({"webhook": 10**9}),
        "PYTHONPATH": str(ROOT),
    }
    args = (
        [sys.executable, "-m", "services.intake"]
        if kind == "intake"
        else [sys.executable, __file__, "--serve-baseline", str(port), redis_url]
    )
    process = subprocess.Popen(args, env=env, cwd=ROOT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}{PATH}", timeout=1)  # any answer (405) means it is up
            return process
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{kind} did not start")


def request_bytes(port: int, n: int, run: str) -> bytes:
    body = json.dumps(
        {
            "call_id": f"bench-{run}-{n}",
            "caller": f"+86138{n % 10**8:08d}",
            "transcript": "我们小区已经停水两天了，物业说是自来水管道坏了，到现在还没人来修。",
            "agent_notes": "市民反映小区停水，请尽快处理。",
            "language": "zh",
            "ivr_choice": "2",
            "location": {"lat": 39.91, "lon": 116.40, "address": "朝阳区某街道某小区"},
        },
        ensure_ascii=False,
    ).encode()
    headers = signed_headers(DEV_SECRET, f"msg_{run}_{n}", body)
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    )
    return head.encode() + body


async def _load(port: int, seconds: float, connections: int, run: str) -> tuple[int, list[float], int]:
    latencies: list[float] = []
    errors = 0
    counter = iter(range(10**9))
    stop_at = time.perf_counter() + seconds

    async def connection() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.perf_counter() < stop_at:
            request = request_bytes(port, next(counter), run)
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if not head.startswith(b"HTTP/1.1 202"):
                errors += 1
        writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    return len(latencies), latencies, errors


def load(port: int, seconds: float, connections: int, out: multiprocessing.Queue[object]) -> None:
    run = uuid.uuid4().hex[:8]
    count, latencies, errors = asyncio.run(_load(port, seconds, connections, run))
    latencies.sort()
    out.put(
        {
            "rps": count / seconds,
            "p50": latencies[len(latencies) // 2] * 1000,
            "p99": latencies[int(len(latencies) * 0.99)] * 1000,
            "errors": errors,
        }
    )


def measure(port: int, seconds: float, connections: int) -> dict[str, float]:
    queue: multiprocessing.Queue[object] = multiprocessing.Queue()
    worker = multiprocessing.Process(target=load, args=(port, seconds, connections, queue))
    worker.start()
    result = queue.get(timeout=seconds + 60)
    worker.join()
    assert isinstance(result, dict)
    return result


def _cpu(process: psutil.Process) -> float:
    user, system = process.cpu_times()[:2]
    return float(user + system)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--serve-baseline", nargs=2, metavar=("PORT", "REDIS_URL"))
    args = parser.parse_args()
    if args.serve_baseline:
        serve_baseline(int(args.serve_baseline[0]), args.serve_baseline[1])
        return

    with EmbeddedRedis() as server:
        ports = {"baseline": free_port(), "intake": free_port()}
        processes = {kind: start(kind, port, server.url) for kind, port in ports.items()}
        client = sync_redis.Redis.from_url(server.url)
        assert server.process is not None
        redis_process = psutil.Process(server.process.pid)
        results: dict[str, list[dict[str, float]]] = {"baseline": [], "intake": []}
        try:
            for kind in ports:  # warm-up, not counted
                measure(ports[kind], 2.0, args.connections)
            for round_ in range(args.rounds):
                for kind in ("baseline", "intake") if round_ % 2 == 0 else ("intake", "baseline"):
                    client.flushdb()
                    server_process = psutil.Process(processes[kind].pid)
                    cpu_before, redis_before = _cpu(server_process), _cpu(redis_process)
                    result = measure(ports[kind], args.seconds, args.connections)
                    served = result["rps"] * args.seconds
                    result["cpu_us"] = (_cpu(server_process) - cpu_before) / served * 1e6
                    result["redis_us"] = (_cpu(redis_process) - redis_before) / served * 1e6
                    results[kind].append(result)
                    print(
                        f"round {round_ + 1} {kind:8s} {result['rps']:8.0f} req/s"
                        f"  p50 {result['p50']:6.2f} ms"
                        f"  p99 {result['p99']:6.2f} ms  server CPU {result['cpu_us']:5.0f} us/req"
                        f"  Redis CPU {result['redis_us']:4.0f} us/req"
                        f"  non-202 {result['errors']:.0f}",
                        flush=True,
                    )
        finally:
            for process in processes.values():
                process.send_signal(signal.SIGTERM)
                process.wait(30)
    metrics = ("rps", "p50", "p99", "cpu_us", "redis_us")
    med = {k: {m: statistics.median(r[m] for r in rs) for m in metrics} for k, rs in results.items()}
    print(f"\nmedians   {'req/s':>10s}{'p50 ms':>10s}{'p99 ms':>10s}{'CPU us/req':>12s}{'Redis us/req':>14s}")
    for kind, m in med.items():
        print(
            f"{kind:10s}{m['rps']:10.0f}{m['p50']:10.2f}{m['p99']:10.2f}{m['cpu_us']:12.0f}{m['redis_us']:14.0f}"
        )
    print(f"\nintake / baseline throughput: {med['intake']['rps'] / med['baseline']['rps']:.2f}")
    print(f"baseline / intake CPU per request: {med['baseline']['cpu_us'] / med['intake']['cpu_us']:.2f}")


if __name__ == "__main__":
    main()

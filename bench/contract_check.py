"""What the data contract's check costs a worker: `store.check_write` per ticket write, against the handler
that produced the write (dispatch's `on_classified`, the busiest), in one run.

    .venv/bin/python bench/contract_check.py [--rounds 5] [--n 2000]

Process CPU time per call, the median of --rounds rounds; the ratio is the share the check adds to the
handler's own work (the worker checks each write once, before the commit).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

from services.dispatch.assign import Counts
from services.dispatch.handlers import on_classified
from services.dispatch.routing import load_routing
from shared import contract
from shared.events import Place, TicketClassified
from shared.settings import DATA_DIR
from shared.store import check_write

NOW = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)


class _Supply:
    def ahead(self, department: str, due: datetime) -> int:
        return 3

    def acceptance(self, department: str, category: str, district: str | None) -> Counts:
        return Counts()

    def added(self, department: str, due: datetime) -> None:
        pass


def _cpu_per_call(fn: Callable[[], object], n: int) -> float:
    started = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - started) / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    table = load_routing(DATA_DIR / "routing.yaml")
    event = TicketClassified(
        event_id="e1",
        ticket_id="T1",
        occurred_at=NOW,
        category="utilities",
        confidence=0.9,
        place=Place(district=None),
        model_version="bench",
        received_at=NOW,
    )

    def handle() -> object:
        return on_classified(event, table=table, supply=_Supply(), now=NOW, previous=None)

    [write] = on_classified(event, table=table, supply=_Supply(), now=NOW, previous=None).writes
    handler = statistics.median(_cpu_per_call(handle, args.n) for _ in range(args.rounds))
    check = statistics.median(
        _cpu_per_call(lambda: check_write(write, contract.DISPATCH), args.n * 10) for _ in range(args.rounds)
    )
    print(f"write: {len(write.fields)} fields, {len(write.ops)} ops")
    print(f"dispatch on_classified (baseline): {handler * 1e6:8.1f} us per ticket")
    print(f"contract check_write:              {check * 1e6:8.1f} us per write")
    print(f"ratio check / handler:             {check / handler:8.3f}")


if __name__ == "__main__":
    main()

"""The workloads every implementation runs, and how a pass of one is run and timed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from peer_base import ITEMS, Impl


@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    ops: int  # operations in one timed pass at scale 1
    tasks: int  # concurrent tasks; 1 = sequential
    run: Callable[[Impl, int], Awaitable[Any]]  # (impl, i) -> one operation


WORKLOADS = [
    Workload("get", "get by pk", 2000, 1, lambda impl, i: impl.get(i % ITEMS + 1)),
    Workload("conc_get", "get, 32 tasks", 3200, 32, lambda impl, i: impl.get(i % ITEMS + 1)),
    Workload(
        "io_conc", "5 ms query, 50 tasks", 500, 50, lambda impl, i: impl.sleepy(i % ITEMS + 1)
    ),
    Workload("list100", "list 100 rows", 400, 1, lambda impl, i: impl.list100()),
    Workload("join", "select_related 100", 300, 1, lambda impl, i: impl.join()),
    Workload("create", "create", 1000, 1, lambda impl, i: impl.create()),
    Workload("atomic3", "3 creates, atomic", 400, 1, lambda impl, i: impl.atomic3()),
]


async def run_workload(impl: Impl, workload: Workload, ops: int) -> float:
    """Run ``ops`` operations; ops/s."""
    per_task = max(1, ops // workload.tasks)

    async def task(t: int) -> None:
        async with impl.task_scope():
            for i in range(t * per_task, (t + 1) * per_task):
                await workload.run(impl, i)

    started = time.perf_counter()
    if workload.tasks == 1:
        for i in range(ops):
            await workload.run(impl, i)
        done = ops
    else:
        await asyncio.gather(*(task(t) for t in range(workload.tasks)))
        done = per_task * workload.tasks
    return done / (time.perf_counter() - started)


async def warm_up(impl: Impl, workload: Workload, ops: int) -> None:
    """Run a fifth of a pass of ``ops`` operations, at least one per task, untimed."""
    await run_workload(impl, workload, max(workload.tasks, ops // 5))


async def run_all(impl: Impl, scale: float, only: list[str] | None) -> dict[str, float]:
    await impl.start()
    results = {}
    try:
        for workload in WORKLOADS:
            if only and workload.key not in only:
                continue
            ops = max(workload.tasks * 2, int(workload.ops * scale))
            await warm_up(impl, workload, ops)
            results[workload.key] = await run_workload(impl, workload, ops)
    finally:
        await impl.stop()
    return results

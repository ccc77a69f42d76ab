"""The loop-thread log (aio_harness/loopcheck.py) read back: violations and counts."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path


def loop_log_summary(path: Path) -> tuple[dict[str, str], list[str]]:
    """(test id -> first violation) and printable lines from the loop-thread log."""
    if not path.is_file():
        return {}, ["loop-thread check: no SQL ran while an event loop was running"]
    violations: dict[str, str] = {}
    by_caller: Counter[str] = Counter()
    tests_on_loop = queries_on_loop = 0
    allowed: Counter[str] = Counter()
    allowed_by_caller: Counter[str] = Counter()
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record["event"] == "violation":
            by_caller[record["caller"]] += 1
            violations.setdefault(
                record["test"] or "(outside any test)",
                f"loop-thread violation via {record['caller']}: {record['sql']}",
            )
        elif record["event"] == "allowed":
            allowed_by_caller[record["caller"]] += 1
        elif record["event"] == "test":
            if record["on_loop"]:
                tests_on_loop += 1
                queries_on_loop += record["on_loop"]
            for key in ("test_hops", "django_hops", "signal_hops", "unchecked"):
                allowed[key] += record.get(key, 0)
    lines = [
        f"loop-thread check: {queries_on_loop} statements ran on the loop thread in "
        f"{tests_on_loop} tests; {sum(by_caller.values())} ran off it in {len(violations)} "
        f"tests (violations)",
        f"  allowed off the loop: {allowed['test_hops']} sent by sync_to_async written in "
        f"the tests, {allowed['django_hops']} by Django outside the ORM's async API "
        f"(sync middleware and views, a sync-only authenticate), {allowed['signal_hops']} by "
        f"Signal.asend's sync receivers outside a transaction; {allowed['unchecked']} in "
        f"tests outside the checked labels",
    ]
    lines += [
        f"  {count:6d} allowed via {caller}" for caller, count in allowed_by_caller.most_common(8)
    ]
    lines += [f"  {count:6d} off-loop via {caller}" for caller, count in by_caller.most_common(25)]
    return violations, lines

"""The through-bridge log (aio_harness/throughbridge.py) read back.

Each line counts the statements one test (or class fixture) ran through the
async connection (``bridged``) and outside it (``plain``), and whether its
class ran the plain way because it is on the explicit list.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path


def bridge_log_summary(path: Path) -> tuple[dict[str, str], list[str]]:
    """(test id -> why it fails the run) and printable lines, per module."""
    if not path.is_file():
        return {}, ["through the bridge: no statement ran in any test"]
    bridged: Counter[str] = Counter()
    plain: Counter[str] = Counter()
    listed_plain: Counter[str] = Counter()
    listed_tests: set[str] = set()
    failing: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        test = record["test"]
        # "setUpClass (basic.tests.C)" -> basic; "basic.tests.C.test_x" -> basic
        module = test.split("(", 1)[-1].split(".", 1)[0].strip()
        bridged[module] += record["bridged"]
        if record["listed"]:
            listed_plain[module] += record["plain"]
            if "(" not in test:
                listed_tests.add(test)
        else:
            plain[module] += record["plain"]
            if record["plain"]:
                failing.setdefault(
                    test,
                    f"{record['plain']} statements ran outside the bridge "
                    f"({record['bridged']} through it) and it is not on the explicit list",
                )
    modules = sorted(set(bridged) | set(plain) | set(listed_plain))
    total_bridged, total_plain = sum(bridged.values()), sum(plain.values())
    lines = [
        f"through the bridge: {total_bridged} statements went through the async connection, "
        f"{total_plain} did not in bridged tests ({len(failing)} tests), "
        f"{sum(listed_plain.values())} ran the plain way in {len(listed_tests)} listed tests",
        "  module: bridged / not bridged / plain (listed)",
    ]
    lines += [
        f"  {module}: {bridged[module]} / {plain[module]} / {listed_plain[module]}"
        for module in modules
    ]
    return failing, lines


def bridge_counts(path: Path) -> dict[str, dict[str, int]]:
    """Test id -> its ``bridged`` and ``plain`` statement counts, from the log."""
    counts: dict[str, dict[str, int]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            counts[record["test"]] = {"bridged": record["bridged"], "plain": record["plain"]}
    return counts

"""Baselines (tests that fail with the stock backend) and reruns of new failures."""

from __future__ import annotations

import re
from pathlib import Path

from .common import HERE, note
from .execution import Execution


def baseline_path(series: str) -> Path:
    return HERE / f"baseline-django-{series}.txt"


def read_baseline(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    lines = path.read_text(encoding="utf-8").splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def write_baseline(path: Path, ids: set[str], header: list[str]) -> None:
    text = "".join(f"# {line}\n" for line in header) + "".join(f"{i}\n" for i in sorted(ids))
    path.write_text(text, encoding="utf-8")


# More new failures than this is a regression, not flakiness: no rerun.
MAX_RERUN = 40
_CLASS_LEVEL_ID = re.compile(r"\w+ \(([\w.]+)\)")


def rerun_label(test_id: str) -> str:
    """The runtests label that runs ``test_id`` again ("setUpClass (m.C)" -> "m.C")."""
    match = _CLASS_LEVEL_ID.fullmatch(test_id)
    return match[1] if match else test_id


def rerun_new_failures(
    run: Execution, new: list[str], failing: dict[str, dict[str, str]], reruns: int
) -> dict[str, dict[str, str]]:
    """Run the new failures again, alone; those that pass are flaky and leave ``failing``.

    A test that fails only in the full run (timing under load, order) is
    reported as flaky, never hidden: the summary lists it with its first error.
    """
    flaky: dict[str, dict[str, str]] = {}
    if not new:
        return flaky
    if len(new) > MAX_RERUN:
        note(f"{len(new)} new failures (more than {MAX_RERUN}): not rerunning them")
        return flaky
    for attempt in range(1, reruns + 1):
        labels = sorted({rerun_label(test_id) for test_id in new})
        note(f"rerun {attempt}/{reruns}: {len(new)} new failing tests, one process")
        report, again, _status = run.execute(labels, "1")
        passed_now = set(report["started"]) - set(report["skipped_ids"]) - set(again)
        for test_id in new:
            label = rerun_label(test_id)
            if label == test_id:
                passed = test_id in passed_now
            else:  # a class-level error: the class must run again, cleanly
                members = [i for i in report["started"] if i.startswith(label + ".")]
                passed = test_id not in again and bool(members) and set(members) <= passed_now
            if passed:
                flaky[test_id] = failing.pop(test_id)
        new = [test_id for test_id in new if test_id not in flaky]
        if not new:
            break
    return flaky

"""The end of a run: counts, baseline comparison, exit status; the self-test's check."""

from __future__ import annotations

import argparse
from typing import Any

from .baseline import baseline_path, read_baseline, rerun_new_failures, write_baseline
from .bridgereport import bridge_counts
from .common import EXIT_FAILED, EXIT_OK, HERE, WORK, Broken, note
from .execution import Execution


def check_self_test(
    report: dict[str, Any], failing: dict[str, dict[str, str]], run: Execution
) -> int:
    """Compare a --self-test run with the outcomes its tests are written to have,
    then rerun its failures as --check-baseline would: only the flaky one passes."""
    from aio_harness.selftest.expected import (
        BRIDGED,
        EXPECTED,
        EXPECTED_THROUGH_BRIDGE,
        FLAKY,
    )

    expected = EXPECTED_THROUGH_BRIDGE if run.args.through_bridge else EXPECTED
    skipped_ids = set(report["skipped_ids"])
    ran = set(report["started"]) | skipped_ids
    got = {
        "failing": {test_id: info["kind"] for test_id, info in failing.items()},
        "passed": len(ran - set(failing) - skipped_ids),
        "skipped": len(skipped_ids),
    }
    problems = [
        f"{key}: expected {expected[key]}, got {got[key]}"
        for key in ("passed", "skipped")
        if expected[key] != got[key]
    ]
    if run.args.through_bridge:
        counts = bridge_counts(WORK / f"{run.name}.bridge.jsonl").get(BRIDGED)
        if not counts or counts["plain"] or not counts["bridged"]:
            problems.append(f"{BRIDGED}: expected its statements through the bridge, got {counts}")
    expected_failing, got_failing = expected["failing"], got["failing"]
    for test_id in sorted(set(expected_failing) | set(got_failing)):
        want, have = expected_failing.get(test_id), got_failing.get(test_id)
        if want != have:
            problems.append(f"{test_id}: expected {want or 'a pass'}, got {have or 'a pass'}")
    if not problems:
        flaky = rerun_new_failures(run, sorted(failing), dict(failing), 1)
        if sorted(flaky) != FLAKY:
            problems.append(f"flaky on rerun: expected {FLAKY}, got {sorted(flaky)}")
    for problem in problems:
        print(f"SELF-TEST MISMATCH {problem}")
    passed, failed = (0, len(problems)) if problems else (1, 0)
    print(f"integration: {passed} passed, {failed} failed")
    return EXIT_FAILED if problems else EXIT_OK


def conclude(
    args: argparse.Namespace,
    report: dict[str, Any],
    failing: dict[str, dict[str, str]],
    flaky: dict[str, dict[str, str]],
    status: int,
    elapsed: float,
    series: str,
    version: str,
) -> int:
    run = report["tests_run"]
    # Counted per test method: a test with several failing subtests is one failure.
    skipped_ids = set(report["skipped_ids"])
    failed_ids = set(failing)
    ran = set(report["started"]) | skipped_ids
    passed = len(ran - failed_ids - skipped_ids - set(flaky))
    skipped = len(skipped_ids - failed_ids)
    minutes, seconds = divmod(int(elapsed), 60)
    print()
    note(
        f"Django {version} ({args.engine}): ran {run} tests in {minutes}m{seconds:02d}s: "
        f"{report['failures']} failures, {report['errors']} errors, "
        f"{report['unexpected_successes']} unexpected successes, {report['skipped']} skipped, "
        f"{report['expected_failures']} expected failures; runtests.py exit status {status}"
    )

    if not report["started"] and not report["skipped_ids"] and not failing:
        raise Broken("no test ran (check the labels and -k patterns)")
    if status != 0 and not failing and not flaky:
        raise Broken(
            f"runtests.py exited with status {status} although every test passed "
            "(a failure after the tests, e.g. in database teardown)"
        )

    path = baseline_path(series)
    if args.write_baseline:
        ids = set(failed_ids)
        if args.labels or args.async_set or args.passthrough:
            # A partial run updates only the tests it ran.
            ids |= read_baseline(path) - ran
        write_baseline(
            path,
            ids,
            [
                f"Tests of Django {series}'s own suite that fail or error with the STOCK",
                "PostgreSQL backend on the CI machine (environment, not django-aio).",
                "Made by: integration/run.py --engine stock --parallel 2 --write-baseline",
                f"(Django {version}, Python {report['python']}). See integration/RESULTS.md.",
            ],
        )
        note(f"wrote {len(ids)} test ids to {path.relative_to(HERE.parent)}")

    if not args.check_baseline:
        for test_id, info in failing.items():
            print(f"FAILED {test_id} [{info['kind']}] {info['message']}")
        print(f"integration: {passed} passed, {len(failed_ids)} failed, {skipped} skipped")
        return EXIT_FAILED if failing else EXIT_OK

    baseline = read_baseline(path)
    if not path.is_file():
        note(f"no baseline for Django {series} ({path.name}): every failure counts")
    new = {i: failing[i] for i in sorted(failed_ids - baseline)}
    known = failed_ids & baseline
    fixed = sorted((baseline & ran) - failed_ids)
    if fixed:
        note(f"{len(fixed)} tests in {path.name} passed this time (baseline may be pruned):")
        for test_id in fixed:
            print(f"  now passing: {test_id}")
    for test_id, info in flaky.items():
        print(
            f"FLAKY {test_id} [{info['kind']}] failed in the run, passed when rerun: "
            f"{info['message']}"
        )
    for test_id, info in new.items():
        print(f"NEW FAILURE {test_id} [{info['kind']}] {info['message']}")
    note(
        f"{len(known)} failing tests are listed in {path.name} (environment; not counted "
        f"below); {len(new)} failing tests are not; {len(flaky)} passed when rerun (flaky)"
    )
    print(f"integration: {passed} passed, {len(new)} failed, {skipped} skipped, {len(flaky)} flaky")
    return EXIT_FAILED if new else EXIT_OK

"""Run Django's own test suite against django-aio's backend (or Django's stock one).

    uv run python integration/run.py [--engine aio|stock] [--no-drop-in] [--parallel N]
        [--async] [--assert-loop-thread | --assert-loop-thread-strict] [--through-bridge]
        [--check-baseline | --write-baseline | --self-test]
        [test labels...] [-- runtests.py arguments]

What it does:

1. Takes the sdist of the *installed* Django from PyPI (with pip, cached under
   integration/.cache/) and extracts its tests/ folder.
2. Runs tests/runtests.py (through aio_harness.bootstrap) with a settings
   module whose ``default`` and ``other`` aliases use
   ``django_aio.conn.backends.postgresql`` (``--engine aio``, the default) or
   ``django.db.backends.postgresql`` (``--engine stock``). With the aio engine,
   the django_aio apps that exist join INSTALLED_APPS (drop-in on). With
   ``--through-bridge`` every test runs inside ``run_sync()`` on an event loop
   (aio_harness/throughbridge.py).
3. Reads the outcome from a JSON report written by the test runner (never from
   the text output), prints a summary, and with ``--check-baseline`` exits 1 if
   any test failed that is not listed in integration/baseline-django-X.Y.txt.

The rest of this side of the harness is in aio_run/, one module per job.

The database: DATABASE_URL or PGHOST/PGPORT (plus the other PG* variables),
else an embedded PostgreSQL, both through ``django_aio.conn.testdb``.

Exit status: 0 all good; 1 tests failed (with --check-baseline: failed and
not in the baseline); 2 the run itself broke (no usable database, download
failed, runtests.py crashed, timed out or stopped early, no test ran).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

# Run as a script, run.py has its folder, integration/, first on sys.path:
# aio_run/ (this side of the harness) is imported from there.
from aio_run.baseline import baseline_path, read_baseline, rerun_new_failures
from aio_run.common import EXIT_BROKEN, EXIT_OK, WORK, Broken, note
from aio_run.config import (
    ASYNC_LABELS,
    ENGINES,
    SELFTEST_LABEL,
    aio_apps,
    present_labels,
    runtests_environment,
)
from aio_run.database import (
    check_extensions,
    check_server,
    database_entry,
    drop_stale_databases,
)
from aio_run.execution import Execution, prune_work
from aio_run.sources import django_tests_dir, installed_django
from aio_run.summary import check_self_test, conclude


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    passthrough: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, passthrough = argv[:cut], argv[cut + 1 :]

    parser = argparse.ArgumentParser(
        prog="integration/run.py",
        description="Run Django's own test suite against django-aio's ENGINE or the stock one.",
        epilog="Arguments after -- go to runtests.py unchanged (e.g. -- -k test_name --timing).",
    )
    parser.add_argument("labels", nargs="*", help="test labels (default: the full suite)")
    parser.add_argument("--engine", choices=sorted(ENGINES), default="aio")
    parser.add_argument(
        "--parallel", default="auto", help='worker processes, or "auto" (default: one per core)'
    )
    parser.add_argument(
        "--no-drop-in",
        dest="drop_in",
        action="store_false",
        help="with --engine aio: keep django_aio.orm installed but set DJANGO_AIO_DROP_IN = False",
    )
    parser.add_argument(
        "--async",
        dest="async_set",
        action="store_true",
        help="run the async-related modules: " + " ".join(ASYNC_LABELS),
    )
    loop_check = parser.add_mutually_exclusive_group()
    loop_check.add_argument(
        "--assert-loop-thread",
        dest="assert_loop_thread",
        action="store_const",
        const="1",
        default=os.environ.get("DJANGO_AIO_ASSERT_LOOP_THREAD") or None,
        help="fail SQL that runs off the event loop's thread while a loop runs, unless a "
        "test itself hopped with sync_to_async (= DJANGO_AIO_ASSERT_LOOP_THREAD=1)",
    )
    loop_check.add_argument(
        "--assert-loop-thread-strict",
        dest="assert_loop_thread",
        action="store_const",
        const="strict",
        help="the same, with no exception (= DJANGO_AIO_ASSERT_LOOP_THREAD=strict)",
    )
    parser.add_argument(
        "--through-bridge",
        action="store_true",
        help="run every test (class fixtures included) inside run_sync() on an event loop, "
        "so every statement goes through the async connection; a test whose statements do "
        "not fails, unless through-bridge-list.txt lists it (needs --engine aio)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--check-baseline",
        action="store_true",
        help="exit 1 only for failures not listed in baseline-django-X.Y.txt",
    )
    mode.add_argument(
        "--write-baseline",
        action="store_true",
        help="record this run's failures as baseline-django-X.Y.txt (use with --engine stock)",
    )
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="run only aio_harness/selftest (known outcomes) and check the report reads them",
    )
    parser.add_argument(
        "--reruns",
        type=int,
        default=1,
        help="with --check-baseline: run tests that failed outside the baseline again, "
        "alone, this many times; one that passes is reported as flaky, not failed "
        "(default 1; 0 turns reruns off)",
    )
    parser.add_argument("-v", "--verbosity", type=int, default=1, help="runtests verbosity")
    parser.add_argument(
        "--timeout",
        type=float,
        default=float(os.environ.get("DJANGO_AIO_IT_TIMEOUT", 3600)),
        help="stop runtests.py after this many seconds (default 3600)",
    )
    args = parser.parse_args(argv)
    args.passthrough = passthrough
    if args.assert_loop_thread in ("0", "off", "false", ""):
        args.assert_loop_thread = None

    try:
        return _run(args)
    except Broken as exc:
        print(f"[integration] error: {exc}", file=sys.stderr, flush=True)
        return EXIT_BROKEN


def _run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    version, series = installed_django()
    tests_dir = django_tests_dir(version)

    labels = list(args.labels)
    if args.self_test:
        if labels or args.async_set or args.check_baseline or args.write_baseline:
            raise Broken("--self-test runs alone (no labels, --async or baseline options)")
        # Imported from integration/ (on PYTHONPATH), not from Django's tests/.
        labels = [SELFTEST_LABEL]
    async_labels = present_labels(tests_dir, ASYNC_LABELS)
    if args.async_set:
        for label in sorted(set(ASYNC_LABELS) - set(async_labels)):
            note(f"skipping label {label}: Django {version} has no tests/{label}")
        labels += async_labels

    if args.through_bridge and args.engine != "aio":
        raise Broken("--through-bridge needs --engine aio (the bridge is django-aio's)")
    entry, source = database_entry()
    server = check_server(entry)
    drop_stale_databases(entry)
    if not labels or any(label.split(".")[0] == "postgres_tests" for label in labels):
        check_extensions(entry, server)
    apps = aio_apps() if args.engine == "aio" else []

    WORK.mkdir(parents=True, exist_ok=True)
    prune_work(keep=10)
    engine_tag = args.engine if args.drop_in or args.engine == "stock" else "aio-nodropin"
    if args.through_bridge:
        engine_tag += "-bridge"

    loop_check_labels = labels or async_labels
    env = runtests_environment(args, entry, apps, loop_check_labels)

    note(f"Django {version} on Python {sys.version.split()[0]}, engine {ENGINES[args.engine]}")
    note(f"database: {server} (from {source})")
    if apps:
        note(f"extra INSTALLED_APPS: {', '.join(apps)}")
        if "django_aio.orm" in apps:
            note(f"drop-in {'on' if args.drop_in else 'off (DJANGO_AIO_DROP_IN = False)'}")
    if args.assert_loop_thread:
        note(
            f"loop-thread check on (DJANGO_AIO_ASSERT_LOOP_THREAD={args.assert_loop_thread}) "
            f"for: {' '.join(loop_check_labels)}"
        )
    if args.through_bridge:
        note("through the bridge: every test runs inside run_sync() on an event loop")
    note(f"labels: {' '.join(labels) if labels else '(full suite)'}")

    run = Execution(args, env, tests_dir, entry, f"django-{version}-{engine_tag}-{os.getpid()}")
    report, failing, status = run.execute(labels, args.parallel)
    elapsed = time.monotonic() - started

    if args.self_test:
        return check_self_test(report, failing, run)
    flaky: dict[str, dict[str, str]] = {}
    if args.check_baseline and args.reruns > 0 and not report.get("stopped_early"):
        new = sorted(set(failing) - read_baseline(baseline_path(series)))
        flaky = rerun_new_failures(run, new, failing, args.reruns)
    code = conclude(args, report, failing, flaky, status, elapsed, series, version)
    if code == EXIT_OK and report.get("stopped_early"):
        raise Broken("the run stopped before the end of the suite: it proves nothing")
    return code


if __name__ == "__main__":
    sys.exit(main())

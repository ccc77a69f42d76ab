"""A DiscoverRunner that writes every test outcome to a JSON report.

run.py gates CI on which tests failed, so it reads them from the result
object rather than from runtests' text output. With ``--parallel`` the workers
send their events back to the parent, which replays them on this result class
with the real test objects, so the ids are the same as in a serial run (class
level errors aside: see ``_test_id``).

The report is written only once the suite has finished; a run that crashes or
is killed leaves none, which run.py reports as an infrastructure failure.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import unittest
from collections import Counter
from typing import Any

import django
from django.test.runner import (
    DiscoverRunner,
    ParallelTestSuite,
    RemoteTestResult,
    RemoteTestRunner,
)

REPORT_ENV = "DJANGO_AIO_IT_REPORT"


def _test_id(test: Any) -> str:
    """The id baselines use: a test method's id, never a subtest's.

    - A failing subtest counts against its test method (subtest descriptions
      may hold reprs that change between runs).
    - An error in setUpClass/tearDownClass/setUpModule is an ``_ErrorHolder``
      whose id reads ``setUpClass (module.Class)``, in serial and parallel
      runs alike (see ``PositionedRemoteTestResult``).
    """
    case = getattr(test, "test_case", None)  # unittest.case._SubTest
    if isinstance(case, unittest.TestCase):
        test = case
    return str(test.id())


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip()[:400] if lines else ""


def _recording(base: type[unittest.TextTestResult]) -> type[unittest.TextTestResult]:
    class RecordingResult(base):  # type: ignore[valid-type, misc]
        """Remembers the id of every test started."""

        def startTest(self, test: unittest.TestCase) -> None:
            super().startTest(test)
            started = self.__dict__.setdefault("aio_started", [])
            started.append(_test_id(test))

    RecordingResult.__name__ = RecordingResult.__qualname__ = f"Recording{base.__name__}"
    return RecordingResult


class PositionedRemoteTestResult(RemoteTestResult):  # type: ignore[misc]
    """A worker's result whose events name the right test.

    Django's workers identify a test by ``testsRun - 1``, and the parent looks
    it up in its copy of the subsuite. Since Python 3.12 unittest no longer
    calls ``startTest`` for a skipped test, so after a skip every later event
    of that subsuite names the test before the right one (seen: Django 6.1 on
    3.12 reporting a failure of ``test_permissions_error`` as
    ``test_notafile_error``). Here the index comes from the test itself, looked
    up in the subsuite's order. Class and module level errors (``_ErrorHolder``)
    are always sent by id, as Django does for those before the first test, so
    a tearDownClass error is not pinned on the class's last test.
    """

    aio_positions: dict[str, int] = {}  # test id -> index in the subsuite
    aio_index = -1

    @property
    def test_index(self) -> int:
        return self.aio_index

    def _locate(self, test: Any) -> None:
        position = self.aio_positions.get(_test_id(test))
        if position is not None:
            self.aio_index = position

    def startTest(self, test: Any) -> None:
        self._locate(test)
        super().startTest(test)

    def addError(self, test: Any, err: Any) -> None:
        if isinstance(test, unittest.suite._ErrorHolder):
            index, self.aio_index = self.aio_index, -1
            try:
                super().addError(test, err)
            finally:
                self.aio_index = index
            return
        self._locate(test)
        super().addError(test, err)

    def addFailure(self, test: Any, err: Any) -> None:
        self._locate(test)
        super().addFailure(test, err)

    def addSubTest(self, test: Any, subtest: Any, err: Any) -> None:
        self._locate(test)
        super().addSubTest(test, subtest, err)

    def addSuccess(self, test: Any) -> None:
        self._locate(test)
        super().addSuccess(test)

    def addSkip(self, test: Any, reason: str) -> None:
        self._locate(test)
        super().addSkip(test, reason)

    def addExpectedFailure(self, test: Any, err: Any) -> None:
        self._locate(test)
        super().addExpectedFailure(test, err)

    def addUnexpectedSuccess(self, test: Any) -> None:
        self._locate(test)
        super().addUnexpectedSuccess(test)


class PositionedRemoteTestRunner(RemoteTestRunner):  # type: ignore[misc]
    """Django's RemoteTestRunner, giving its result the subsuite's order."""

    resultclass = PositionedRemoteTestResult

    def run(self, test: unittest.TestSuite) -> unittest.TestResult:
        # Same steps as RemoteTestRunner.run, plus the positions, taken before
        # the suite runs (unittest drops tests from a suite as they finish).
        result = self.resultclass()
        result.aio_positions = {_test_id(t): i for i, t in enumerate(test)}
        unittest.registerResult(result)
        result.failfast = self.failfast
        result.buffer = self.buffer
        test(result)
        return result


class PositionedParallelTestSuite(ParallelTestSuite):  # type: ignore[misc]
    runner_class = PositionedRemoteTestRunner


def build_report(result: unittest.TestResult) -> dict[str, Any]:
    """The JSON-able outcome of a finished run."""
    failing: dict[str, dict[str, str]] = {}

    def add(kind: str, entries: list[tuple[Any, str]]) -> None:
        for test, text in entries:
            test_id = _test_id(test)
            # The first failure of a test wins; later subtest failures of the
            # same test add nothing new for the baseline.
            failing.setdefault(test_id, {"kind": kind, "message": _last_line(text)})

    add("error", result.errors)
    add("failure", result.failures)
    for test in result.unexpectedSuccesses:
        failing.setdefault(
            _test_id(test), {"kind": "unexpected_success", "message": "unexpected success"}
        )
    started = set(getattr(result, "aio_started", []))
    # Since Python 3.12 a skipped test is never started: count skips by id.
    skipped = {_test_id(test) for test, _reason in result.skipped}
    skip_reasons = Counter(reason for _test, reason in result.skipped)
    return {
        "complete": True,
        "django": django.__version__,
        "python": platform.python_version(),
        "tests_run": result.testsRun,
        "failures": len(result.failures),
        "errors": len(result.errors),
        "unexpected_successes": len(result.unexpectedSuccesses),
        "skipped": len(result.skipped),
        "expected_failures": len(result.expectedFailures),
        "skip_reasons": dict(skip_reasons.most_common()),
        # Test method ids (never subtests'): started ones, and skipped ones
        # (a test skipped from inside is in both).
        "started": sorted(started),
        "skipped_ids": sorted(skipped),
        "failing": dict(sorted(failing.items())),
    }


class ReportingRunner(DiscoverRunner):
    """Django's DiscoverRunner, plus the report named by ``DJANGO_AIO_IT_REPORT``."""

    parallel_test_suite = PositionedParallelTestSuite

    def get_resultclass(self) -> type[unittest.TextTestResult]:
        base = super().get_resultclass() or unittest.TextTestResult
        return _recording(base)

    def run_suite(self, suite: unittest.TestSuite, **kwargs: Any) -> unittest.TestResult:
        size = suite.countTestCases()  # before the run: unittest empties the suite
        result = super().run_suite(suite, **kwargs)
        path = os.environ.get(REPORT_ENV)
        if path:
            report = build_report(result)
            report["suite_size"] = size
            # Ctrl-C or --failfast: the run stopped before the end of the suite.
            report["stopped_early"] = bool(result.shouldStop)
            tmp = f"{path}.tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(report, f, indent=1)
            os.replace(tmp, path)
        sys.stdout.flush()
        return result

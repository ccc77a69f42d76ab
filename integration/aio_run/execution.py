"""One run of runtests.py and the report it leaves in .work/."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from .bridgereport import bridge_log_summary
from .common import WORK, Broken, note
from .database import show_activity
from .loopthread import loop_log_summary
from .process import run_runtests


class Execution:
    """Runs runtests.py (once, or again for reruns) with one environment."""

    def __init__(
        self,
        args: argparse.Namespace,
        env: dict[str, str],
        tests_dir: Path,
        entry: dict[str, Any],
        name: str,
    ) -> None:
        self.args = args
        self.env = env
        self.tests_dir = tests_dir
        self.entry = entry
        self.name = name
        self.runs = 0

    def execute(
        self, labels: list[str], parallel: str
    ) -> tuple[dict[str, Any], dict[str, dict[str, str]], int]:
        """(report, failing test id -> kind and message, runtests' exit status)."""
        self.runs += 1
        run_name = self.name if self.runs == 1 else f"{self.name}-rerun{self.runs - 1}"
        report_path = WORK / f"{run_name}.report.json"
        loop_log = WORK / f"{run_name}.loop-thread.jsonl"
        bridge_log = WORK / f"{run_name}.bridge.jsonl"
        log_path = WORK / f"{run_name}.log"
        for stale in (report_path, loop_log, bridge_log):
            stale.unlink(missing_ok=True)
        env = dict(self.env)
        env.update(
            DJANGO_AIO_IT_REPORT=str(report_path),
            DJANGO_AIO_IT_LOOP_LOG=str(loop_log),
            DJANGO_AIO_IT_BRIDGE_LOG=str(bridge_log),
        )
        cmd = [
            sys.executable,
            "-m",
            "aio_harness.bootstrap",
            "--settings=aio_harness.settings",
            "--noinput",
            f"--parallel={parallel}",
            f"--verbosity={self.args.verbosity}",
            *labels,
            *self.args.passthrough,
        ]
        note(f"output is also written to {log_path}")
        suffix = env["DJANGO_AIO_IT_DB_SUFFIX"]
        status = run_runtests(
            cmd,
            self.tests_dir,
            env,
            log_path,
            self.args.timeout,
            lambda: show_activity(self.entry, suffix),
        )
        if not report_path.is_file():
            raise Broken(
                f"runtests.py exited with status {status} before reporting any result "
                f"(a crash, an abort or a usage error: see the output above or {log_path})"
            )
        report = json.loads(report_path.read_text(encoding="utf-8"))
        failing: dict[str, dict[str, str]] = report["failing"]
        if report.get("stopped_early"):
            note(
                f"the run stopped early (interrupted, or --failfast): {report['tests_run']} "
                f"of {report['suite_size']} tests ran"
            )
        if self.args.through_bridge:
            not_bridged, lines = bridge_log_summary(bridge_log)
            for line in lines:
                note(line)
            for test_id, message in not_bridged.items():
                failing.setdefault(test_id, {"kind": "not_bridged", "message": message})
        if self.args.assert_loop_thread:
            violations, lines = loop_log_summary(loop_log)
            for line in lines:
                note(line)
            for test_id, message in violations.items():
                # A violation that the test swallowed still fails it.
                failing.setdefault(test_id, {"kind": "loop_thread", "message": message})
        return report, failing, status


def prune_work(keep: int) -> None:
    """Keep the files of the newest ``keep`` runs in .work/."""
    runs: dict[str, float] = {}
    for path in WORK.glob("django-*"):
        run = re.sub(r"\.(report\.json|loop-thread\.jsonl|bridge\.jsonl|log)$", "", path.name)
        runs[run] = max(runs.get(run, 0.0), path.stat().st_mtime)
    for run in sorted(runs, key=runs.__getitem__, reverse=True)[keep:]:
        for path in WORK.glob(f"{run}.*"):
            path.unlink(missing_ok=True)

"""Running runtests.py: its output, its timeout, and never an orphan.

runtests.py runs in its own session, so a timeout can stop it and its
parallel workers as one process group. That also shields it from signals sent
to run.py's group, so on Linux it asks the kernel for SIGINT when run.py
dies, however run.py ends (SIGINT lets runtests drop its test databases).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

from .common import Broken, note


def run_runtests(
    cmd: list[str],
    cwd: Path,
    env: dict[str, str],
    log_path: Path,
    timeout: float,
    on_timeout: Callable[[], None] | None = None,
) -> int:
    """Run runtests.py, echo and log its output; return its exit status."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_interrupt_when_parent_dies,
        )
        pump = threading.Thread(target=_pump, args=(proc.stdout, log), daemon=True)
        pump.start()
        try:
            status = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            note(f"runtests.py still running after {timeout:.0f}s: stopping it")
            if on_timeout is not None:
                on_timeout()
            _stop(proc)
            pump.join(5)
            raise Broken(f"runtests.py timed out after {timeout:.0f}s (see {log_path})") from None
        except KeyboardInterrupt:
            _stop(proc)
            raise
        pump.join()
    return status


def _pump(stream: IO[bytes], log: IO[bytes]) -> None:
    # read1, not readline: the progress dots come without a newline.
    while chunk := stream.read1(65536):  # type: ignore[attr-defined]
        sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
        log.write(chunk)
    stream.close()


def _interrupt_when_parent_dies() -> None:
    """In the child, before exec: SIGINT when run.py dies (Linux's PR_SET_PDEATHSIG)."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGINT)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Interrupt runtests and its workers, harder each time they outlive 15 s."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=15)
            return
        except subprocess.TimeoutExpired:
            continue

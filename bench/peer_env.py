"""The throwaway environment that bench/peers.py and bench/profile_get.py run in.

Standard library only: it runs before the environment exists. ``reexec()``
builds ``bench/.venv-peers`` (once, again when its inputs change) and
re-executes the calling script with that environment's Python.

The environment holds the workspace's packages (editable) at the versions of
``uv.lock`` plus the peers the benchmark compares against (django-async-backend,
SQLAlchemy's asyncio ORM) and the tools it uses (uvloop, uvicorn, httpx,
matplotlib). django-async-backend is pinned to Django 6.1, which needs Python
3.12+: the environment is built on a Python 3.12+ when one is found
(``--python``, ``$BENCH_PYTHON``, ``uv python find``, pyenv's versions; 3.12
first), so every row runs on the same Python and Django; otherwise on the
current Python, without the django-async-backend rows.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV = HERE / ".venv-peers"
STAMP = VENV / "bench-stamp.txt"

PEERS = [
    "django-async-backend>=6.1,<6.2; python_version >= '3.12'",
    "sqlalchemy[asyncio]>=2.0,<2.1",
    "uvloop>=0.19",
    "uvicorn>=0.30",
    "httpx>=0.27",
    "psutil>=5.9",
    "matplotlib>=3.8",
]
WORKSPACE = ["packages/async-conn[embedded]", "packages/async-atomic", "packages/async-orm"]


def in_peer_env() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _runs(python: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    return int(out[0]), int(out[1])


def find_python(requested: str | None) -> str:
    """A Python 3.12+ if there is one (every row can run), else the current one."""
    if requested:
        return requested
    # 3.12 first: the Python that CI runs Django 6.1 on; then any later one.
    candidates = [os.environ.get("BENCH_PYTHON", "")]
    uv = shutil.which("uv")
    pyenv_root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    for spec, pattern in (("3.12", "3.12*"), (">=3.12", "3.1[3-9]*")):
        if uv:
            found = subprocess.run(
                [uv, "python", "find", "--no-project", spec], capture_output=True, text=True
            )
            candidates.append(found.stdout.strip() if found.returncode == 0 else "")
        candidates += sorted(glob.glob(f"{pyenv_root}/versions/{pattern}/bin/python3"))
    candidates += [shutil.which(f"python3.{minor}") or "" for minor in (12, 13, 14)]
    for python in filter(None, candidates):
        version = _runs(python)
        if version and version >= (3, 12):
            return python
    print(
        "bench: no Python 3.12+ found (pass --python): running on this Python,"
        " without django-async-backend (it needs Django 6.1, so Python 3.12+)",
        file=sys.stderr,
    )
    return sys.executable


def _stamp(python: str) -> str:
    digest = hashlib.sha256()
    for part in (python, *PEERS, *WORKSPACE, (ROOT / "uv.lock").read_text()):
        digest.update(part.encode())
    for package in WORKSPACE:
        pyproject = ROOT / package.split("[")[0] / "pyproject.toml"
        digest.update(pyproject.read_bytes())
    return digest.hexdigest()


def ensure(python: str) -> Path:
    """Build (or reuse) the environment on ``python``; its interpreter."""
    uv = shutil.which("uv")
    if uv is None:
        raise SystemExit("bench: uv is needed to build bench/.venv-peers (pip install uv)")
    stamp = _stamp(python)
    if venv_python().exists() and STAMP.exists() and STAMP.read_text() == stamp:
        return venv_python()
    print(f"bench: building {VENV.relative_to(ROOT)} on {python}", file=sys.stderr)
    shutil.rmtree(VENV, ignore_errors=True)
    subprocess.run([uv, "venv", "--quiet", "--python", python, str(VENV)], check=True)
    # uv.lock's versions (Django, psycopg, greenlet, ...) as constraints.
    constraints = VENV / "constraints.txt"
    subprocess.run(
        [uv, "export", "--frozen", "--quiet", "--no-hashes", "--no-emit-workspace",
         "--all-groups", "--output-file", str(constraints)],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    editable = [arg for package in WORKSPACE for arg in ("-e", package)]
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--python", str(venv_python()),
         "--constraints", str(constraints), *editable, *PEERS],
        cwd=ROOT,
        check=True,
    )  # fmt: skip
    STAMP.write_text(stamp)
    return venv_python()


def reexec(script: str, python: str | None) -> None:
    """Run ``script`` (with this process's arguments) in the environment, unless already there."""
    if in_peer_env():
        return
    interpreter = str(ensure(find_python(python)))
    sys.stdout.flush()
    os.execv(interpreter, [interpreter, script, *sys.argv[1:]])

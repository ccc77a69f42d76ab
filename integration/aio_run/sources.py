"""Django's own tests, from the sdist of the installed Django (cached in .cache/)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from .common import CACHE, Broken, note


def installed_django() -> tuple[str, str]:
    """(full version, "major.minor") of the Django installed in this interpreter."""
    version = importlib.metadata.version("django")
    match = re.fullmatch(r"(\d+)\.(\d+)(?:\.\d+)?(?:(?:a|b|rc)\d+)?", version)
    if not match:
        raise Broken(
            f"Django {version} is not a release; its tests are not on PyPI. "
            "Install a released Django (the workspace lock pins one)."
        )
    return version, f"{match[1]}.{match[2]}"


def _pip_command() -> list[str]:
    """pip for this interpreter: its own, else uv's tool runner."""
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    uv = shutil.which("uv")
    if uv:
        # --python: pip must judge Requires-Python by the interpreter we test.
        return [uv, "tool", "run", "--python", sys.executable, "pip"]
    raise Broken("neither pip nor uv is available to download Django's sdist")


def download_sdist(version: str) -> Path:
    """The sdist of Django ``version`` from the package index, cached."""
    sdists = CACHE / "sdist"
    for name in (f"django-{version}.tar.gz", f"Django-{version}.tar.gz"):
        if (sdists / name).is_file():
            return sdists / name
    local = os.environ.get("DJANGO_AIO_IT_SDIST")
    if local:
        return Path(local)
    sdists.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=sdists) as tmp:
        cmd = [
            *_pip_command(),
            "download",
            "--no-deps",
            "--no-binary=:all:",
            "--disable-pip-version-check",
            "--dest",
            tmp,
            f"Django=={version}",
        ]
        note(f"downloading the Django {version} sdist: {' '.join(cmd)}")
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        found = [p for p in Path(tmp).iterdir() if p.name.endswith(".tar.gz")]
        if done.returncode != 0 or len(found) != 1:
            raise Broken(
                f"could not download the Django {version} sdist "
                f"(pip exit {done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
            )
        target = sdists / found[0].name
        found[0].replace(target)
    return target


# The whole sdist is extracted, as in a checkout of Django: besides tests/, the
# sphinx tests read docs/_ext/ and the django/ source beside it. runtests.py
# still tests the *installed* Django (only tests/ goes on sys.path).
EXTRACTED_STAMP = ".extracted-2"


def django_tests_dir(version: str) -> Path:
    """``tests/`` of Django ``version``, extracted once under .cache/."""
    target = CACHE / f"django-{version}"
    if (target / EXTRACTED_STAMP).is_file():
        return target / "tests"
    sdist = download_sdist(version)
    CACHE.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".django-{version}-", dir=CACHE))
    try:
        with tarfile.open(sdist) as tar:
            members = []
            for member in tar.getmembers():
                # "django-5.2.19/tests/runtests.py" -> "tests/runtests.py"
                inner = member.name.partition("/")[2]
                if inner:
                    member.name = inner
                    members.append(member)
            if not any(m.name == "tests/runtests.py" for m in members):
                raise Broken(f"{sdist.name} has no tests/runtests.py")
            if hasattr(tarfile, "data_filter"):
                tar.extractall(staging, members=members, filter="data")
            else:  # pragma: no cover - Python < 3.11.4
                tar.extractall(staging, members=members)
        (staging / EXTRACTED_STAMP).write_text(f"{sdist.name}\n", encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    note(f"extracted Django {version}'s tests into {target / 'tests'}")
    return target / "tests"

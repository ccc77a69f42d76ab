"""Runs every ``python`` code block of the documentation pages, so no example rots.

Each page's blocks run in order in one namespace, as one reader would type
them, with top-level ``await`` allowed, on the test databases with real
commits (flushed after each page). A block that raises, or whose ``assert``
fails, fails its page's test. A block whose first line names a test module
(``# test_pizzas.py``) is such a module: it is written out and run by pytest
in a subprocess, and every test in it must pass. Pages quoted from elsewhere
(the migration guides compare with other libraries' code) are not run.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

DOCS = Path(__file__).parent
# Pages whose ``python`` blocks are examples of this project's API, run here.
PAGES = ["getting-started.md", "transactions.md", "testing-guide.md", "orm.md"]
_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)
_TEST_MODULE = re.compile(r"# (test_\w+\.py)\n")


def blocks(page: str) -> list[tuple[int, str]]:
    """The ``python`` blocks of a page, each with its first line number."""
    text = (DOCS / page).read_text()
    return [(text[: m.start(1)].count("\n") + 1, m.group(1)) for m in _BLOCK.finditer(text)]


# Settings and router snippets of a project with a replica and PgBouncer:
# deploy/ tests the same code on real servers. performance.md's asgi.py
# calls gc.freeze(), which would freeze the test process's objects for the
# rest of the run; bench/gc_pauses.py measures that call.
NOT_RUN = {"deploying.md", "performance.md"}


def test_every_page_is_listed() -> None:
    own = {p.name for p in DOCS.glob("*.md") if not p.name.startswith("from-")} - NOT_RUN
    with_code = {page for page in own if blocks(page)}
    assert with_code <= set(PAGES), f"add {sorted(with_code - set(PAGES))} to PAGES"


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.aio_db(transaction=True)
async def test_page_examples(page: str) -> None:
    found = blocks(page)
    assert found, f"{page} has no python block"
    from orm_testapp.models import Box, Pizza, Topping

    # Every page uses the models getting-started.md introduces.
    namespace: dict[str, Any] = {"__name__": f"docs.{page}", "Box": Box, "Pizza": Pizza}
    namespace["Topping"] = Topping
    for line, source in found:
        module = _TEST_MODULE.match(source)
        if module:
            run_test_module(module.group(1), source)
            continue
        # Pad so tracebacks point at the page's own line numbers.
        code = compile(
            "\n" * (line - 1) + source,
            str(DOCS / page),
            "exec",
            flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
        )
        result = eval(code, namespace)
        if result is not None:  # a block with top-level await
            await result


def run_test_module(name: str, source: str) -> None:
    """Run ``source`` as the test module ``name`` under pytest, in a subprocess.

    It is written to a dot-folder of docs/ (which the main run does not
    collect), so the workspace's conftest configures Django for it.
    """
    folder = DOCS / f".examples-{os.getpid()}"
    folder.mkdir()
    try:
        (folder / name).write_text(source)
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder / name)],
            cwd=DOCS.parent,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        shutil.rmtree(folder)
    summary = done.stdout.strip().splitlines()[-1:] or [""]
    assert done.returncode == 0, done.stdout + done.stderr
    assert " passed" in summary[0], done.stdout

"""Run Django's own test suite against django-aio's backend (or Django's stock one).

    uv run python integration/run.py [--engine aio|stock] [--no-drop-in] [--parallel N]
        [--async] [--assert-loop-thread | --assert-loop-thread-strict]
        [--check-baseline | --write-baseline | --self-test]
        [test labels...] [-- runtests.py arguments]

What it does:

1. Takes the sdist of the *installed* Django from PyPI (with pip, cached under
   integration/.cache/) and extracts its tests/ folder.
2. Runs tests/runtests.py (through aio_harness.bootstrap) with a settings
   module whose ``default`` and ``other`` aliases use
   ``django_aio.conn.backends.postgresql`` (``--engine aio``, the default) or
   ``django.db.backends.postgresql`` (``--engine stock``). With the aio engine,
   the django_aio apps that exist join INSTALLED_APPS (drop-in on).
3. Reads the outcome from a JSON report written by the test runner (never from
   the text output), prints a summary, and with ``--check-baseline`` exits 1 if
   any test failed that is not listed in integration/baseline-django-X.Y.txt.

The database: DATABASE_URL or PGHOST/PGPORT (plus the other PG* variables),
else an embedded PostgreSQL, both through ``django_aio.conn.testdb``.

Exit status: 0 all good; 1 tests failed (with --check-baseline: failed and
not in the baseline); 2 the run itself broke (no usable database, download
failed, runtests.py crashed, timed out or stopped early, no test ran).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# DJANGO_AIO_IT_CACHE moves the cache (e.g. out of a fresh CI clone).
CACHE = Path(os.environ.get("DJANGO_AIO_IT_CACHE") or HERE / ".cache")
WORK = HERE / ".work"

ENGINES = {
    "aio": "django_aio.conn.backends.postgresql",
    "stock": "django.db.backends.postgresql",
}
# Joined to INSTALLED_APPS with --engine aio, each only once it exists as an app.
AIO_APPS = ["django_aio.conn", "django_aio.atomic", "django_aio.orm"]

# Django test modules that exercise the ORM's async API and the machinery the
# drop-in must carry (relations, transactions, locking, auth and sessions).
ASYNC_LABELS = [
    "async",
    "async_queryset",
    "basic",
    "model_fields",
    "many_to_many",
    "many_to_one",
    "generic_relations",
    "get_or_create",
    "auth_tests",
    "sessions_tests",
    "prefetch_related",
    "select_related",
    "transactions",
    "transaction_hooks",
    "select_for_update",
    "pagination",
]

EXIT_OK, EXIT_FAILED, EXIT_BROKEN = 0, 1, 2
SELFTEST_LABEL = "aio_harness.selftest"


class Broken(Exception):
    """The run could not produce a result (exit status 2)."""


def note(message: str) -> None:
    print(f"[integration] {message}", flush=True)


# --- Django's tests from its sdist -----------------------------------------


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


# --- database and apps ----------------------------------------------------------


def database_entry() -> tuple[dict[str, Any], str]:
    """The server's DATABASES entry (minus ENGINE) and where it came from."""
    try:
        from django_aio.conn.testdb import database_settings
    except ImportError:
        return _entry_from_environment()
    source = (
        "DATABASE_URL"
        if os.environ.get("DATABASE_URL")
        else "PG* variables"
        if os.environ.get("PGHOST") or os.environ.get("PGPORT")
        else "embedded PostgreSQL"
    )
    entry = dict(database_settings())
    entry.pop("ENGINE", None)
    entry.pop("TEST", None)
    return entry, source


def _entry_from_environment() -> tuple[dict[str, Any], str]:
    """Fallback while django_aio.conn.testdb is unavailable: env, else 127.0.0.1."""
    from urllib.parse import unquote, urlsplit

    url = os.environ.get("DATABASE_URL")
    if url:
        parts = urlsplit(url)
        return {
            "NAME": unquote(parts.path.lstrip("/")) or "postgres",
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": unquote(parts.hostname or ""),
            "PORT": str(parts.port or ""),
        }, "DATABASE_URL"
    if os.environ.get("PGHOST") or os.environ.get("PGPORT"):
        name = os.environ.get("PGDATABASE", "postgres")
        return {"NAME": name, "USER": "", "PASSWORD": "", "HOST": "", "PORT": ""}, "PG*"
    return {
        "NAME": "postgres",
        "USER": "postgres",
        "PASSWORD": "",
        "HOST": "127.0.0.1",
        "PORT": "5432",
    }, "default 127.0.0.1:5432 (django_aio.conn.testdb not importable)"


def _connect(entry: dict[str, Any]) -> Any:
    import psycopg

    params = {
        "dbname": entry.get("NAME") or None,
        "user": entry.get("USER") or None,
        "password": entry.get("PASSWORD") or None,
        "host": entry.get("HOST") or None,
        "port": entry.get("PORT") or None,
        "connect_timeout": 10,
    }
    return psycopg.connect(**{k: v for k, v in params.items() if v is not None})


def show_activity(entry: dict[str, Any], suffix: str) -> None:
    """Print what this run's test databases are doing (for a run that hangs)."""
    try:
        with _connect(entry) as conn:
            rows = conn.execute(
                "SELECT pid, datname, state, wait_event_type, wait_event,"
                " now() - query_start, left(query, 200) FROM pg_stat_activity"
                " WHERE datname LIKE %s ORDER BY query_start",
                (f"test_djaio_%\\_{suffix}%",),
            ).fetchall()
    except Exception as exc:
        note(f"could not read pg_stat_activity: {exc}")
        return
    note(f"sessions on this run's test databases ({len(rows)}):")
    for row in rows:
        print("   ", " | ".join(str(value) for value in row))


STALE_DATABASE = re.compile(r"test_djaio_(?:aio|stock)_(?:default|other)_(\d+)(?:_\d+)?")


def drop_stale_databases(entry: dict[str, Any]) -> None:
    """Drop test databases left by runs of this machine that were killed.

    Their names end in the pid of the run.py that made them; only a local
    server is cleaned (a pid says nothing about another machine's runs), and
    never a database still in use.
    """
    host = str(entry.get("HOST") or os.environ.get("PGHOST") or "")
    if host not in ("", "localhost", "127.0.0.1", "::1") and not host.startswith("/"):
        return
    in_use = _suffixes_in_use()
    with _connect(entry) as conn:
        conn.autocommit = True
        names = [row[0] for row in conn.execute("SELECT datname FROM pg_database")]
        for name in names:
            match = STALE_DATABASE.fullmatch(name)
            if not match or match[1] in in_use or _alive(int(match[1])):
                continue
            try:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
                note(f"dropped {name}, left by a run that is gone")
            except Exception as exc:
                note(f"could not drop {name}: {exc}")


def _suffixes_in_use() -> set[str]:
    """DJANGO_AIO_IT_DB_SUFFIX of every runtests process still on this machine.

    A runtests process whose run.py was killed (before run.py asked the kernel
    to interrupt it in that case) may still hold its databases.
    """
    found = set()
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            data = environ.read_bytes()
        except OSError:
            continue
        for item in data.split(b"\0"):
            if item.startswith(b"DJANGO_AIO_IT_DB_SUFFIX="):
                found.add(item.partition(b"=")[2].decode())
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_server(entry: dict[str, Any]) -> str:
    """Connect once, so a missing server fails here with a clear message."""
    import psycopg

    try:
        with _connect(entry) as conn:
            version = conn.execute("SHOW server_version").fetchone()
            info = conn.info
            return f"PostgreSQL {version[0] if version else '?'} at {info.host}:{info.port}"
    except psycopg.Error as exc:
        raise Broken(f"cannot connect to PostgreSQL ({entry!r}): {exc}") from exc


# Created by the postgres_tests migration while the test database is set up:
# a server without one aborts the whole run before any test.
NEEDED_EXTENSIONS = (
    "bloom",
    "btree_gin",
    "btree_gist",
    "citext",
    "hstore",
    "pg_trgm",
    "unaccent",
    "uuid-ossp",
)


def check_extensions(entry: dict[str, Any], server: str) -> None:
    with _connect(entry) as conn:
        available = {row[0] for row in conn.execute("SELECT name FROM pg_available_extensions")}
    missing = [name for name in NEEDED_EXTENSIONS if name not in available]
    if missing:
        raise Broken(
            f"{server} lacks the extension(s) {', '.join(missing)} that postgres_tests "
            "creates; the run would abort while setting up the test database. Use a "
            "server with PostgreSQL's contrib modules (DATABASE_URL or PG*), e.g. the "
            "machine's own: DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres"
        )


def aio_apps() -> list[str]:
    """The django_aio apps that exist in this environment, with a note for the rest."""
    if importlib.util.find_spec("django_aio.conn.backends.postgresql") is None:
        raise Broken(f"--engine aio needs {ENGINES['aio']}, which is not importable")
    apps = []
    for app in AIO_APPS:
        try:
            spec = importlib.util.find_spec(app)
        except ModuleNotFoundError:
            spec = None
        if spec is None or not spec.submodule_search_locations:
            note(f"skipping {app}: not installed")
        elif not any(
            (Path(folder) / "apps.py").is_file() for folder in spec.submodule_search_locations
        ):
            note(f"skipping {app}: it has no AppConfig (apps.py) yet")
        else:
            apps.append(app)
    return apps


# --- running runtests.py ----------------------------------------------------------


def _pump(stream: Any, log: Any) -> None:
    # read1, not readline: the progress dots come without a newline.
    while chunk := stream.read1(65536):
        sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
        log.write(chunk)
    stream.close()


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
            start_new_session=True,  # one process group: runtests and its workers
            preexec_fn=_interrupt_when_parent_dies,
        )
        previous = signal.signal(signal.SIGTERM, lambda *_: _stop(proc) or sys.exit(143))
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
        finally:
            signal.signal(signal.SIGTERM, previous)
        pump.join()
    return status


def _interrupt_when_parent_dies() -> None:
    """In the child: get SIGINT if run.py dies, so runtests never runs orphaned.

    runtests.py lives in its own process group (so a timeout can stop its
    workers too), which also shields it from a signal sent to run.py's group;
    without this, killing run.py from outside would leave the suite running
    with nobody reading its output. SIGINT lets runtests drop its databases.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGINT)


def _stop(proc: subprocess.Popen[bytes]) -> None:
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


# --- baselines and summary --------------------------------------------------


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


def loop_log_summary(path: Path) -> tuple[dict[str, str], list[str]]:
    """(test id -> first violation) and printable lines from the loop-thread log."""
    if not path.is_file():
        return {}, ["loop-thread check: no SQL ran while an event loop was running"]
    violations: dict[str, str] = {}
    by_caller: Counter[str] = Counter()
    tests_on_loop = queries_on_loop = 0
    allowed: Counter[str] = Counter()
    allowed_by_caller: Counter[str] = Counter()
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record["event"] == "violation":
            by_caller[record["caller"]] += 1
            violations.setdefault(
                record["test"] or "(outside any test)",
                f"loop-thread violation via {record['caller']}: {record['sql']}",
            )
        elif record["event"] == "allowed":
            allowed_by_caller[record["caller"]] += 1
        elif record["event"] == "test":
            if record["on_loop"]:
                tests_on_loop += 1
                queries_on_loop += record["on_loop"]
            for key in ("test_hops", "django_hops", "signal_hops", "unchecked"):
                allowed[key] += record.get(key, 0)
    lines = [
        f"loop-thread check: {queries_on_loop} statements ran on the loop thread in "
        f"{tests_on_loop} tests; {sum(by_caller.values())} ran off it in {len(violations)} "
        f"tests (violations)",
        f"  allowed off the loop: {allowed['test_hops']} sent by sync_to_async written in "
        f"the tests, {allowed['django_hops']} by Django outside the ORM's async API "
        f"(sync middleware and views, contrib.auth), {allowed['signal_hops']} by "
        f"Signal.asend's sync receivers outside a transaction; {allowed['unchecked']} in "
        f"tests outside the checked labels",
    ]
    lines += [
        f"  {count:6d} allowed via {caller}" for caller, count in allowed_by_caller.most_common(8)
    ]
    lines += [f"  {count:6d} off-loop via {caller}" for caller, count in by_caller.most_common(25)]
    return violations, lines


def prune_work(keep: int) -> None:
    """Keep the files of the newest ``keep`` runs in .work/."""
    runs: dict[str, float] = {}
    for path in WORK.glob("django-*"):
        run = re.sub(r"\.(report\.json|loop-thread\.jsonl|log)$", "", path.name)
        runs[run] = max(runs.get(run, 0.0), path.stat().st_mtime)
    for run in sorted(runs, key=runs.__getitem__, reverse=True)[keep:]:
        for path in WORK.glob(f"{run}.*"):
            path.unlink(missing_ok=True)


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
    async_labels = [label for label in ASYNC_LABELS if (tests_dir / label).is_dir()]
    if args.async_set:
        for label in sorted(set(ASYNC_LABELS) - set(async_labels)):
            note(f"skipping label {label}: Django {version} has no tests/{label}")
        labels += async_labels

    entry, source = database_entry()
    server = check_server(entry)
    drop_stale_databases(entry)
    if not labels or any(label.split(".")[0] == "postgres_tests" for label in labels):
        check_extensions(entry, server)
    apps = aio_apps() if args.engine == "aio" else []

    WORK.mkdir(parents=True, exist_ok=True)
    prune_work(keep=10)
    engine_tag = args.engine if args.drop_in or args.engine == "stock" else "aio-nodropin"

    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    env.update(
        DJANGO_AIO_IT_ENGINE=args.engine,
        DJANGO_AIO_IT_DATABASE=json.dumps(entry),
        DJANGO_AIO_IT_DB_SUFFIX=str(os.getpid()),
        DJANGO_AIO_IT_APPS=",".join(apps),
        DJANGO_AIO_IT_DROP_IN="1" if args.drop_in else "0",
        PYTHONUNBUFFERED="1",
    )
    env.pop("DJANGO_AIO_ASSERT_LOOP_THREAD", None)
    env.pop("DJANGO_AIO_ASSERT_LOOP_THREAD_SCOPE", None)
    if args.assert_loop_thread:
        env["DJANGO_AIO_ASSERT_LOOP_THREAD"] = args.assert_loop_thread
        # In a full-suite run the check covers the async-related modules: the
        # rest of the suite serves sync views through the async test client,
        # whose SQL runs in Django's thread by design.
        env["DJANGO_AIO_ASSERT_LOOP_THREAD_SCOPE"] = ",".join(labels or async_labels)

    note(f"Django {version} on Python {sys.version.split()[0]}, engine {ENGINES[args.engine]}")
    note(f"database: {server} (from {source})")
    if apps:
        note(f"extra INSTALLED_APPS: {', '.join(apps)}")
        if "django_aio.orm" in apps:
            note(f"drop-in {'on' if args.drop_in else 'off (DJANGO_AIO_DROP_IN = False)'}")
    if args.assert_loop_thread:
        note(
            f"loop-thread check on (DJANGO_AIO_ASSERT_LOOP_THREAD={args.assert_loop_thread}) "
            f"for: {' '.join(labels) if labels else ' '.join(async_labels)}"
        )
    note(f"labels: {' '.join(labels) if labels else '(full suite)'}")

    run = Execution(args, env, tests_dir, entry, f"django-{version}-{engine_tag}-{os.getpid()}")
    report, failing, status = run.execute(labels, args.parallel)
    elapsed = time.monotonic() - started

    if args.self_test:
        return _check_self_test(report, failing, run)
    flaky: dict[str, dict[str, str]] = {}
    if args.check_baseline and args.reruns > 0 and not report.get("stopped_early"):
        new = sorted(set(failing) - read_baseline(baseline_path(series)))
        flaky = rerun_new_failures(run, new, failing, args.reruns)
    code = _conclude(args, report, failing, flaky, status, elapsed, series, version)
    if code == EXIT_OK and report.get("stopped_early"):
        raise Broken("the run stopped before the end of the suite: it proves nothing")
    return code


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
        log_path = WORK / f"{run_name}.log"
        for stale in (report_path, loop_log):
            stale.unlink(missing_ok=True)
        env = dict(self.env)
        env.update(DJANGO_AIO_IT_REPORT=str(report_path), DJANGO_AIO_IT_LOOP_LOG=str(loop_log))
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
        if self.args.assert_loop_thread:
            violations, lines = loop_log_summary(loop_log)
            for line in lines:
                note(line)
            for test_id, message in violations.items():
                # A violation that the test swallowed still fails it.
                failing.setdefault(test_id, {"kind": "loop_thread", "message": message})
        return report, failing, status


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


def _check_self_test(
    report: dict[str, Any], failing: dict[str, dict[str, str]], run: Execution
) -> int:
    """Compare a --self-test run with the outcomes its tests are written to have,
    then rerun its failures as --check-baseline would: only the flaky one passes."""
    from aio_harness.selftest.expected import EXPECTED, FLAKY

    skipped_ids = set(report["skipped_ids"])
    ran = set(report["started"]) | skipped_ids
    got = {
        "failing": {test_id: info["kind"] for test_id, info in failing.items()},
        "passed": len(ran - set(failing) - skipped_ids),
        "skipped": len(skipped_ids),
    }
    problems = [
        f"{key}: expected {EXPECTED[key]}, got {got[key]}"
        for key in ("passed", "skipped")
        if EXPECTED[key] != got[key]
    ]
    expected_failing, got_failing = EXPECTED["failing"], got["failing"]
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


def _conclude(
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


if __name__ == "__main__":
    sys.exit(main())

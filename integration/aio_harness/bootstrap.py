"""Entry point of the runtests process: ``python -m aio_harness.bootstrap ARGS``.

run.py starts it with the extracted ``tests/`` folder as the working directory
and runtests.py's own arguments. It runs runtests.py unchanged, as
``__main__``, after these additions:

- Apps in ``DJANGO_AIO_IT_APPS`` (comma-separated) join runtests'
  ``ALWAYS_INSTALLED_APPS``. runtests.py assigns INSTALLED_APPS itself
  (``settings.INSTALLED_APPS = ALWAYS_INSTALLED_APPS`` right before
  ``django.setup()``), so a settings module cannot add apps; instead
  ``django.setup`` is wrapped to extend that very list in place the first time
  it is called on it. Every later use of the list (the test apps appended to
  it, parallel workers) sees our apps too.
- ``DJANGO_AIO_ASSERT_LOOP_THREAD`` installs the loop-thread check
  (loopcheck.py) before any test runs; forked workers inherit it.
- ``DJANGO_AIO_IT_THROUGH_BRIDGE`` runs every test inside ``run_sync()``
  (throughbridge.py).
- With the aio engine, the ``django_aio`` namespace package gets a
  ``__file__`` (see ``_give_namespace_package_a_file``).
"""

from __future__ import annotations

import os
import runpy
import sys
from typing import Any

APPS_ENV = "DJANGO_AIO_IT_APPS"


def _extend_installed_apps(extra: list[str]) -> None:
    import django
    from django.conf import settings

    original_setup = django.setup

    def setup(*args: Any, **kwargs: Any) -> None:
        main = sys.modules.get("__main__")
        always = getattr(main, "ALWAYS_INSTALLED_APPS", None)
        if isinstance(always, list) and settings.INSTALLED_APPS is always:
            always.extend(app for app in extra if app not in always)
            django.setup = original_setup  # done: the list now holds our apps
        original_setup(*args, **kwargs)

    django.setup = setup


def _give_namespace_package_a_file() -> None:
    """Let the suite's admin_scripts helper locate our ENGINE's package.

    ``AdminScriptTestCase._ext_backend_paths`` (used by admin_scripts,
    test_runner, user_commands, ...) computes
    ``os.path.dirname(__import__("django_aio").__file__)`` to put a third-party
    ENGINE on the PYTHONPATH of the subprocesses it starts. ``django_aio`` is a
    PEP 420 namespace package, whose ``__file__`` is None, so some 200 tests
    would fail with a TypeError in that helper, not in our code. Point
    ``__file__`` into the folder that holds django_aio.conn, as a regular
    package's would be.
    """
    try:
        import django_aio
    except ImportError:
        return
    if getattr(django_aio, "__file__", None) is not None:
        return
    for folder in django_aio.__path__:
        if os.path.isdir(os.path.join(folder, "conn")):
            django_aio.__file__ = os.path.join(folder, "__init__.py")
            return


def main() -> None:
    tests_dir = os.getcwd()
    runtests = os.path.join(tests_dir, "runtests.py")
    if not os.path.isfile(runtests):
        sys.exit(f"aio_harness.bootstrap: no runtests.py in {tests_dir}")
    # runtests.py imports the test apps as top-level modules from its folder.
    if sys.path[0] != tests_dir:
        sys.path.insert(0, tests_dir)

    if os.environ.get("DJANGO_AIO_IT_ENGINE") == "aio":
        _give_namespace_package_a_file()

    extra = [app for app in os.environ.get(APPS_ENV, "").split(",") if app]
    if extra:
        _extend_installed_apps(extra)

    from aio_harness import loopcheck

    if loopcheck.install_from_environment():
        print(f"{loopcheck.ENV}={os.environ[loopcheck.ENV]}: SQL off the loop thread fails")

    from aio_harness import throughbridge

    if throughbridge.install_from_environment():
        print(f"{throughbridge.ENV}=1: every test runs inside run_sync() on an event loop")

    sys.argv = [runtests, *sys.argv[1:]]
    runpy.run_path(runtests, run_name="__main__")


if __name__ == "__main__":
    main()

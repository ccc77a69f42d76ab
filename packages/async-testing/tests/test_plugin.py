"""The pytest plugin in fresh pytest runs (pytester): pytest-asyncio, anyio, pytest-django."""

from __future__ import annotations

import os
import textwrap

import pytest

pytest_plugins = ["pytester"]

SETTINGS = """
import os

from django_aio.conn.testdb import database_settings

DEBUG = False
USE_TZ = True
SECRET_KEY = "plugin-tests"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "django_aio.conn"]
DATABASES = {
    "default": database_settings(
        "django_aio", TEST={"NAME": f"test_django_aio_plugin_{os.getpid()}"}
    ),
}
"""

CONFIGURE = """
import django
from django.conf import settings

import plugin_settings


def pytest_configure(config):
    if not settings.configured:
        settings.configure(
            **{k: v for k, v in vars(plugin_settings).items() if k.isupper()}
        )
        django.setup()
"""

TESTS = """
import asyncio

import pytest
from django.contrib.auth.models import User

from django_aio.conn import async_connections, run_sync


async def count():
    return await run_sync(User.objects.count)


@pytest.fixture
async def alice(aio_db):
    return await run_sync(User.objects.create, username="alice")


{mark}
async def test_fixture_data_is_visible(alice):
    assert await asyncio.gather(count(), count()) == [1, 1]


{mark}
async def test_rolled_back(aio_db):
    assert await count() == 0


{mark}
@pytest.mark.aio_db(transaction=True)
async def test_commits():
    await run_sync(User.objects.create, username="bob")
    async with async_connections.independent_connection():
        assert await count() == 1


{mark}
@pytest.mark.aio_db(transaction=True)
async def test_flushed():
    assert await count() == 0


{mark}
async def test_leaves_a_cursor_open(aio_transactional_db):
    global cursor
    cursor = async_connections["default"].cursor()
    await cursor.__aenter__()


{mark}
async def test_after_the_leak(aio_db):
    assert await count() == 0
"""


def _write_project(pytester: pytest.Pytester, mark: str, ini: str) -> None:
    pytester.makepyfile(plugin_settings=SETTINGS)
    pytester.makeini(textwrap.dedent(ini))
    pytester.makepyfile(test_project=TESTS.format(mark=mark))


def _check_outcomes(result: pytest.RunResult) -> None:
    result.assert_outcomes(passed=6, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_leaves_a_cursor_open*",
            "E*django_aio.testing.ConnectionLeaked: the test left database connections in use:",
            "E*- a connection checked out to database 'default', by task '*' "
            "(taken at *test_project.py:* in test_leaves_a_cursor_open)*",
        ]
    )


def test_with_pytest_asyncio(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFIGURE)
    _write_project(
        pytester,
        "",
        """
        [pytest]
        asyncio_mode = auto
        asyncio_default_fixture_loop_scope = function
        """,
    )
    _check_outcomes(pytester.runpytest_subprocess("-p", "no:cacheprovider"))


def test_with_anyio(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        "import pytest\n"
        + CONFIGURE
        + """

@pytest.fixture
def anyio_backend():
    return "asyncio"
"""
    )
    _write_project(
        pytester,
        "@pytest.mark.anyio",
        """
        [pytest]
        asyncio_mode = strict
        asyncio_default_fixture_loop_scope = function
        """,
    )
    _check_outcomes(pytester.runpytest_subprocess("-p", "no:cacheprovider"))


def test_with_pytest_django(pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_django", reason="run with `uv run --with pytest-django`")
    _write_project(
        pytester,
        "",
        """
        [pytest]
        DJANGO_SETTINGS_MODULE = plugin_settings
        asyncio_mode = auto
        asyncio_default_fixture_loop_scope = function
        """,
    )
    _check_outcomes(pytester.runpytest_subprocess("-p", "no:cacheprovider"))


def test_unittest_classes_need_no_conftest_with_pytest_django(pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_django", reason="run with `uv run --with pytest-django`")
    pytester.makepyfile(plugin_settings=SETTINGS)
    pytester.makeini("[pytest]\nDJANGO_SETTINGS_MODULE = plugin_settings\n")
    pytester.makepyfile(
        test_cases="""
        from django.contrib.auth.models import User

        from django_aio.conn import run_sync
        from django_aio.testing import AsyncioTestCase, AsyncioTransactionTestCase


        class Rollback(AsyncioTestCase):
            @classmethod
            def setUpTestData(cls):
                User.objects.create(username="alice")

            async def test_sees_the_data(self):
                self.assertEqual(await run_sync(User.objects.count), 1)


        class Commit(AsyncioTransactionTestCase):
            async def test_starts_empty(self):
                self.assertEqual(await run_sync(User.objects.count), 0)
        """
    )
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_embedded_server_for_aliases_that_name_no_server(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        plugin_settings=SETTINGS.replace(
            'database_settings(\n        "django_aio",',
            'dict(database_settings("django_aio"), HOST="", PORT="", USER="", PASSWORD="",',
        )
    )
    pytester.makeconftest(CONFIGURE)
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
        "aio_embedded_postgres = always\n"
    )
    pytester.makepyfile(
        test_embedded="""
        from django.db import connections

        async def test_on_the_embedded_server(aio_db):
            from django_aio.conn import async_connections
            async with async_connections["default"].cursor() as cursor:
                await cursor.execute("SELECT current_setting('data_directory')")
                (folder,) = await cursor.fetchone()
            assert "django-aio-embedded-pg" in folder
            assert connections.settings["default"]["HOST"] != ""
        """
    )
    env_free = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env_free.pop("DATABASE_URL", None)
    with pytest.MonkeyPatch.context() as patch:
        for key in [k for k in os.environ if k.startswith("PG") or k == "DATABASE_URL"]:
            patch.delenv(key)
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_bad_embedded_mode_is_refused(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(plugin_settings=SETTINGS)
    pytester.makeconftest(CONFIGURE)
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
        "aio_embedded_postgres = sometimes\n"
    )
    pytester.makepyfile(test_x="async def test_x(aio_db):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*ValueError: aio_embedded_postgres must be one of auto, always, never, got 'sometimes'"]
    )


def test_sync_tests_are_refused(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(plugin_settings=SETTINGS)
    pytester.makeconftest(CONFIGURE)
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(test_x="def test_sync(aio_db):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*UsageError: aio_db is for `async def` tests: test_sync is a sync test*"]
    )

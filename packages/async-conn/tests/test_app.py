"""The django_aio.conn app: its system check."""

from __future__ import annotations

import pytest
from django.core import checks
from django.test import override_settings

from django_aio.conn.apps import check_engines

pytestmark = pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")


def test_no_warning_when_an_alias_uses_the_engine() -> None:
    assert check_engines() == []
    assert check_engines in checks.registry.registry.get_checks()


@override_settings(DATABASES={"default": {"ENGINE": "django.db.backends.postgresql"}})
def test_warns_when_no_alias_uses_the_engine() -> None:
    [warning] = check_engines()
    assert warning.id == "django_aio.W001"
    assert warning.msg == "django_aio.conn is installed but no DATABASES entry uses its ENGINE."
    assert warning.hint == (
        "Set 'ENGINE': 'django_aio.conn.backends.postgresql' on the aliases async code "
        "should reach."
    )

"""``django_aio.conn.testdb.settings_from_url``: the one parser of DATABASE_URL."""

from __future__ import annotations

import pytest

from django_aio.conn.testdb import settings_from_url


def test_every_part_of_the_url() -> None:
    assert settings_from_url("postgresql://ann:s%40cret@db.example:6543/shop%2Dx") == {
        "NAME": "shop-x",
        "USER": "ann",
        "PASSWORD": "s@cret",
        "HOST": "db.example",
        "PORT": "6543",
        "OPTIONS": {},
    }


def test_missing_parts_are_left_to_libpq() -> None:
    assert settings_from_url("postgres://") == {
        "NAME": "postgres",
        "USER": "",
        "PASSWORD": "",
        "HOST": "",
        "PORT": "",
        "OPTIONS": {},
    }


def test_host_user_and_port_from_the_query_string() -> None:
    entry = settings_from_url("postgresql:///app?host=%2Frun%2Fpostgresql&user=bob&port=5433")
    assert (entry["NAME"], entry["HOST"], entry["USER"], entry["PORT"]) == (
        "app",
        "/run/postgresql",
        "bob",
        "5433",
    )


def test_another_scheme_is_refused() -> None:
    with pytest.raises(
        ValueError, match=r"^DATABASE_URL must start with postgresql:// \(got scheme 'mysql'\)$"
    ):
        settings_from_url("mysql://root@localhost/app")

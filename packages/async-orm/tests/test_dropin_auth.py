"""``django.contrib.auth``'s backends in drop-in mode: their sync ORM methods run
in the bridge, on the caller's connection; a sync-only ``authenticate`` keeps
Django's thread (Note [How drop-in patches Django])."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.contrib.auth.backends import BaseBackend, RemoteUserBackend
from django.contrib.auth.models import User

from django_aio.atomic import async_atomic
from django_aio.conn import in_bridge


class ByPrimaryKey(BaseBackend):
    """A project's backend with only the sync methods (Django's base adds the a* ones)."""

    def __init__(self) -> None:
        self.authenticated_in: list[tuple[int, bool]] = []

    def get_user(self, user_id: int) -> User | None:
        return User.objects.filter(pk=user_id).first()

    def get_user_permissions(self, user_obj: Any, obj: Any = None) -> set[str]:
        return {f"auth.{u.username}" for u in User.objects.filter(pk=user_obj.pk)}

    def authenticate(self, request: Any, **credentials: Any) -> None:
        self.authenticated_in.append((threading.get_ident(), in_bridge()))


class Configuring(RemoteUserBackend):
    def configure_user(self, request: Any, user: Any, created: bool = True) -> Any:
        user.first_name = "configured"
        user.save(update_fields=["first_name"])
        return user


async def test_sync_get_user_sees_the_callers_transaction() -> None:
    backend = ByPrimaryKey()
    async with async_atomic():
        user = await User.objects.acreate(username="in-the-block")
        assert await backend.aget_user(user.pk) == user
        assert await backend.aget_user_permissions(user) == {"auth.in-the-block"}
        assert await backend.aget_all_permissions(user) == {"auth.in-the-block"}


async def test_remote_user_configure_user_saves_in_the_callers_transaction() -> None:
    with pytest.raises(ZeroDivisionError):
        async with async_atomic():
            user = await Configuring().aauthenticate(None, remote_user="remote")
            assert user is not None
            assert (await User.objects.aget(username="remote")).first_name == "configured"
            1 / 0  # noqa: B018
    assert not await User.objects.filter(username="remote").aexists()


@pytest.mark.threads_allowed
async def test_a_sync_only_authenticate_keeps_djangos_thread() -> None:
    backend = ByPrimaryKey()
    assert await backend.aauthenticate(None, username="x", password="y") is None
    [(thread, bridged)] = backend.authenticated_in
    assert thread != threading.get_ident()
    assert not bridged

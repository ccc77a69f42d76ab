"""The ``django_aio.orm`` Django app: drop-in mode at start-up."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core.signals import setting_changed


class AsyncOrmConfig(AppConfig):
    """Turns drop-in mode on unless ``DJANGO_AIO_DROP_IN = False``."""

    name = "django_aio.orm"
    label = "django_aio_orm"
    verbose_name = "django-aio ORM"

    def ready(self) -> None:
        from ._dropin import enable_drop_in
        from ._settings import drop_in_setting

        if drop_in_setting():
            enable_drop_in()
        setting_changed.connect(_on_setting_changed, dispatch_uid="django_aio_orm_drop_in")


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting != "DJANGO_AIO_DROP_IN":
        return
    from ._dropin import disable_drop_in, enable_drop_in
    from ._settings import drop_in_setting

    if drop_in_setting():
        enable_drop_in()
    else:
        disable_drop_in()

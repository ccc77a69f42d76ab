"""django_aio.atomic (under construction)."""

__all__: list[str] = []

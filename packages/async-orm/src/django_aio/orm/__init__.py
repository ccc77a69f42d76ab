"""django_aio.orm (under construction)."""

__all__: list[str] = []

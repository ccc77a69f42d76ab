"""django_aio.testing (under construction)."""

__all__: list[str] = []

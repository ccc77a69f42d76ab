"""A small ASGI Django project whose views use django-aio."""

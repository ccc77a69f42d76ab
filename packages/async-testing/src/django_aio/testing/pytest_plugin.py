"""pytest plugin for django-aio (under construction)."""

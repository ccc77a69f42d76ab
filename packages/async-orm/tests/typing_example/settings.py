"""Settings for django-stubs' mypy plugin (never used to run anything).

The plugin loads Django's app registry from these to type models, managers
and querysets; the example app's models are registered here too.
"""

SECRET_KEY = "typing-only"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django_aio.conn",
    "django_aio.orm",
    "typing_example",
]
DATABASES = {"default": {"ENGINE": "django_aio.conn.backends.postgresql", "NAME": "typing"}}
USE_TZ = True

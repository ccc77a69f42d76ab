"""A user-side typing example of django-aio, checked in CI, never run.

``models.py`` declares models the way an application would; ``usage.py``
states, with ``assert_type``, what both mypy (with django-stubs' plugin) and
pyright infer for the async APIs, plus lines that must stay type errors;
``usage_mypy.py`` holds what only django-stubs' mypy plugin infers
(``values()`` rows as typed dicts). ``.ci/typing`` runs both checkers.
"""

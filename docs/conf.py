"""Sphinx configuration of the django-aio documentation site.

Build: ``uv run --group docs sphinx-build -W --keep-going docs docs/_build/html``
(or ``.ci/docs``). Pages are Markdown (MyST); the reference pages are
generated from the packages' docstrings by autodoc.
"""

from __future__ import annotations

import django
from django.conf import settings

project = "django-aio"
author = "the django-aio authors"
copyright = "2026, the django-aio authors"

extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown"}
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3
# deploying.md is a page of the repository (linked from the README) that
# deployment.md includes.
exclude_patterns = ["_build", "README.md", "deploying.md"]
root_doc = "index"

html_theme = "furo"
html_title = "django-aio"
html_static_path: list[str] = []

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True}

# Every reference to this project's own objects must resolve; references to
# other projects' (Python, Django, psycopg) are left unlinked, as the build is
# offline (no intersphinx inventories).
nitpicky = True
# Type variables (``M``, ``T``) and private helper classes are not documented.
nitpick_ignore_regex = [
    (r"py:.*", r"(?!django_aio\b).*"),
    (r"py:.*", r"django_aio\..*\.([A-Z]|_\w+)"),
    # Base classes that live in private modules (shown as bases, not documented).
    (r"py:class", r"django_aio\.\w+\._\w+\.\w+"),
]

# CI builds offline: no link is fetched, only the site's own references are
# checked (``-b linkcheck`` reports them; ``-W`` fails on broken ones).
linkcheck_ignore = [r"https?://.*"]

# autodoc imports the packages; Django needs settings for that (no database
# is touched).
if not settings.configured:
    settings.configure(
        INSTALLED_APPS=["django.contrib.contenttypes", "django_aio.conn", "django_aio.orm"],
        DATABASES={"default": {"ENGINE": "django_aio.conn.backends.postgresql", "NAME": "docs"}},
        USE_TZ=True,
    )
    django.setup()

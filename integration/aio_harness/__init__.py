"""Glue that runs Django's own test suite (tests/runtests.py) against django-aio.

Everything here is driven by ``integration/run.py`` through environment
variables; the modules are importable because run.py puts ``integration/`` on
``PYTHONPATH`` of the runtests process:

- ``bootstrap``: the process entry point; adds our apps to runtests'
  INSTALLED_APPS, installs the loop-thread check if asked, runs runtests.py.
- ``settings``: the ``--settings`` module (DATABASES, TEST_RUNNER).
- ``runner``: a DiscoverRunner that writes a JSON report of every outcome.
- ``loopcheck``: DJANGO_AIO_ASSERT_LOOP_THREAD, the "SQL runs on the event
  loop's thread" assertion.
- ``throughbridge`` (with ``bridgeloop``): DJANGO_AIO_IT_THROUGH_BRIDGE,
  every test inside ``run_sync()`` on an event loop, statements counted.
"""

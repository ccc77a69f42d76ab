"""The run.py side of the integration harness (run.py is the command).

One module per job:

- ``common``: paths, exit statuses, ``Broken`` and ``note``.
- ``sources``: Django's tests, from the sdist of the installed Django.
- ``database``: the server (from ``django_aio.conn.testdb``), its checks, the
  databases of killed runs.
- ``config``: what the runtests process gets: engines, apps, labels, its
  environment.
- ``process``: starting runtests.py, its output, its timeout.
- ``execution``: one runtests run and the report it leaves.
- ``loopthread``: the summary of the loop-thread log.
- ``baseline``: baseline files and reruns of new failures.
- ``summary``: the final counts, the exit status, the self-test's check.

``aio_harness/`` is the other side: imported by the runtests process.
"""

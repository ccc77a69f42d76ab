"""django_aio.testing: fast, realistic tests for async Django code on django_aio.

``AsyncioTestCase`` rolls each test back on one shared connection;
``AsyncioTransactionTestCase`` lets work commit and flushes afterwards. The
pytest plugin (registered automatically) offers the same as the ``aio_db`` and
``aio_transactional_db`` fixtures and the ``aio_db`` marker.
"""

from ._queries import CaptureQueriesContext
from ._session import ConnectionLeaked, RollbackDatabase, TransactionalDatabase
from ._testcases import AsyncioTestCase, AsyncioTransactionTestCase

__all__ = [
    "AsyncioTestCase",
    "AsyncioTransactionTestCase",
    "CaptureQueriesContext",
    "ConnectionLeaked",
    "RollbackDatabase",
    "TransactionalDatabase",
]

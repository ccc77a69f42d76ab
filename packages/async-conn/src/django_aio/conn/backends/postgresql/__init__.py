"""The ``django_aio.conn.backends.postgresql`` database ENGINE."""

"""``python -m faults.asgi HTTP_PORT`` serves the site with uvicorn (FAULTS_DB_PORT set)."""

from __future__ import annotations

import sys

import uvicorn

from faults.asgi.site import application

uvicorn.run(
    application,
    host="127.0.0.1",
    port=int(sys.argv[1]),
    log_level="warning",
    lifespan="off",
)

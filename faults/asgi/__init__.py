"""A tiny Django ASGI site for the uvicorn scenario (run as ``python -m faults.asgi``)."""

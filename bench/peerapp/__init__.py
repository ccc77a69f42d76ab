"""The models, settings and ASGI app shared by every Django row of bench/peers.py."""

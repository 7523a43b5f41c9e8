"""Jindou: an IM message broker on Redis Streams, WuKongIM-compatible."""

__version__ = "0.1.0"

"""Where the test suite finds its services: one Redis server and one PostgreSQL database.

Every suite takes its own Redis database number on the one server named by `TEST_REDIS_SERVER`, so
two checkouts can run their suites at once against two Redis servers (and two PostgreSQL
databases, through `TEST_POSTGRES_URL`) without sharing a key.
"""

from __future__ import annotations

import os

TEST_REDIS_SERVER = os.environ.get("TEST_REDIS_SERVER", "redis://127.0.0.1:6379").rstrip("/")
TEST_POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def redis_database(number: int) -> str:
    """The URL of database `number` on the test Redis server."""
    return f"{TEST_REDIS_SERVER}/{number}"

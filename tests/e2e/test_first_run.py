"""Setting up the way many Django users will: `manage.py migrate` alone, in a fresh data directory."""

from __future__ import annotations

import contextlib
import os

import pytest

from tests.e2e.harness import System, fresh_postgres_database

pytestmark = pytest.mark.e2e


class MigrateAloneTests:
    def test_migrate_creates_the_cache_table_the_workers_need(self, _fake_ollama_server, tmp_path):
        database_url = os.environ.get("DATABASE_URL", "")
        with contextlib.ExitStack() as stack:
            if database_url.startswith(("postgres", "pgsql")):
                database_url = stack.enter_context(fresh_postgres_database(database_url))
            # No REDIS_URL: the embedded default's database cache, which django-q2's cluster statistics use.
            system = System(tmp_path, ollama_url=_fake_ollama_server.url, database_url=database_url, redis_url="")

            system.manage("migrate")

            tables = system.query("from django.db import connection\nresult = connection.introspection.table_names()")
            assert "trollama_cache" in tables
            assert system.query("from django.core.cache import cache\ncache.set('k', 1)\nresult = cache.get('k')") == 1

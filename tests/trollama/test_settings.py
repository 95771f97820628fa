"""Configuration: the embedded default, production, and every bad value."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

SETTINGS = Path(__file__).resolve().parents[2] / "trollama" / "settings.py"
VARIABLES = [
    "DATABASE_URL",
    "REDIS_URL",
    "OLLAMA_HOST",
    "WEB_URL",
    "MAX_QUEUE_SIZE",
    "MAX_ATTEMPTS",
    "REQUEST_TIMEOUT",
    "DEBUG",
    "TIME_ZONE",
    "LOG_LEVEL",
]


def load(monkeypatch, tmp_path, **env: str) -> dict:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(SETTINGS))


class EmbeddedDefaultTests:
    def test_no_environment_means_sqlite_in_wal_mode_and_the_orm_broker(self, monkeypatch, tmp_path):
        settings = load(monkeypatch, tmp_path)

        database = settings["DATABASES"]["default"]
        assert database["ENGINE"] == "django.db.backends.sqlite3"
        assert "journal_mode=WAL" in database["OPTIONS"]["init_command"]
        assert settings["Q_CLUSTER"]["orm"] == "default"
        assert settings["Q_CLUSTER"]["poll"] <= 0.1
        assert settings["CHANNEL_LAYERS"]["default"]["BACKEND"] == "channels.layers.InMemoryChannelLayer"
        assert settings["WEB_URL"] == "http://127.0.0.1:8000"
        assert settings["OLLAMA_HOST"] == "http://localhost:11434"
        assert settings["MAX_QUEUE_SIZE"] == 50

    def test_secrets_are_generated_once_and_shared_by_every_process(self, monkeypatch, tmp_path):
        first = load(monkeypatch, tmp_path)
        second = load(monkeypatch, tmp_path)

        assert len(first["INTERNAL_TOKEN"]) >= 32
        assert first["INTERNAL_TOKEN"] == second["INTERNAL_TOKEN"]
        assert first["SECRET_KEY"] == second["SECRET_KEY"] != first["INTERNAL_TOKEN"]


class ProductionTests:
    def test_postgres_and_redis_switch_broker_and_channel_layer(self, monkeypatch, tmp_path):
        settings = load(
            monkeypatch,
            tmp_path,
            DATABASE_URL="postgres://trollama:secret@db.internal:5432/trollama",
            REDIS_URL="redis://cache.internal:6379/2",
        )

        database = settings["DATABASES"]["default"]
        assert database["ENGINE"] == "django.db.backends.postgresql"
        assert (database["NAME"], database["HOST"], database["PORT"]) == ("trollama", "db.internal", 5432)
        assert settings["Q_CLUSTER"]["redis"] == "redis://cache.internal:6379/2"
        assert "orm" not in settings["Q_CLUSTER"]
        layer = settings["CHANNEL_LAYERS"]["default"]
        assert layer["BACKEND"] == "channels_redis.core.RedisChannelLayer"
        assert layer["CONFIG"]["hosts"][0]["socket_timeout"] is None


class BadValueTests:
    @pytest.mark.parametrize(
        ("variable", "value"),
        [
            ("DATABASE_URL", "mysql://root@localhost/trollama"),
            ("DATABASE_URL", "not a url"),
            ("DATABASE_URL", "postgres://localhost:5432/"),
            ("REDIS_URL", "http://localhost:6379"),
            ("REDIS_URL", "redis://localhost:notaport/0"),
            ("OLLAMA_HOST", "localhost:11434"),
            ("OLLAMA_HOST", "http://"),
            ("OLLAMA_HOST", "ftp://gpu-box:11434"),
            ("WEB_URL", "127.0.0.1:8000"),
            ("MAX_QUEUE_SIZE", "fifty"),
            ("MAX_QUEUE_SIZE", "0"),
            ("MAX_ATTEMPTS", "2.5"),
            ("REQUEST_TIMEOUT", "-1"),
            ("OLLAMA_READ_TIMEOUT", "soon"),
            ("Q_POLL", "nan"),
            ("DEBUG", "maybe"),
            ("TIME_ZONE", "Mars/Olympus_Mons"),
            ("LOG_LEVEL", "loud"),
            ("INSTANCE_NAME", "two words"),
        ],
    )
    def test_it_fails_at_start_up_naming_the_variable(self, monkeypatch, tmp_path, variable, value):
        with pytest.raises(ImproperlyConfigured, match=variable):
            load(monkeypatch, tmp_path, **{variable: value})

    def test_manage_py_exits_non_zero_with_the_message(self, tmp_path):
        env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path), "MAX_QUEUE_SIZE": "lots"}
        result = subprocess.run(
            [sys.executable, "manage.py", "check"],
            cwd=SETTINGS.parents[1],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

        assert result.returncode != 0
        assert "ImproperlyConfigured" in result.stderr
        assert "MAX_QUEUE_SIZE has an invalid value 'lots'" in result.stderr

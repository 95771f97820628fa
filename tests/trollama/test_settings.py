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
    "DJANGO_ENV",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
    "BEHIND_TLS_PROXY",
    "SECURE_HSTS_SECONDS",
    "LOG_FORMAT",
    "LOG_TO_FILE",
    "LOG_DIR",
    "LOG_RETENTION_DAYS",
    "METRICS_TOKEN",
    "METRICS_WINDOW_MINUTES",
    "DISCORD_TOKEN",
    "DISCORD_API_URL",
]
PRODUCTION = {
    "DJANGO_ENV": "production",
    "SECRET_KEY": "a-production-secret-key-that-is-long-enough-for-django-0123456789",
    "ALLOWED_HOSTS": "trollama.example.org",
    "CSRF_TRUSTED_ORIGINS": "https://trollama.example.org",
}


def load(monkeypatch, tmp_path, **env: str) -> dict:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(SETTINGS))


class DiscordApiUrlTests:
    def test_it_defaults_to_discords_own_api_v10(self, monkeypatch, tmp_path):
        assert load(monkeypatch, tmp_path)["DISCORD_API_URL"] == "https://discord.com/api/v10"

    def test_a_proxy_url_is_taken_without_its_trailing_slash(self, monkeypatch, tmp_path):
        settings = load(monkeypatch, tmp_path, DISCORD_API_URL="http://nirn-proxy:8080/api/v10/")

        assert settings["DISCORD_API_URL"] == "http://nirn-proxy:8080/api/v10"


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


class BehindATlsProxyTests:
    def test_production_turns_on_secure_cookies_hsts_and_the_proxy_header(self, monkeypatch, tmp_path):
        settings = load(monkeypatch, tmp_path, **PRODUCTION)

        assert settings["IS_PRODUCTION"]
        assert settings["SESSION_COOKIE_SECURE"] and settings["CSRF_COOKIE_SECURE"]
        assert settings["SECURE_SSL_REDIRECT"]
        assert settings["SECURE_HSTS_SECONDS"] == 31_536_000
        assert settings["SECURE_PROXY_SSL_HEADER"] == ("HTTP_X_FORWARDED_PROTO", "https")
        assert settings["CSRF_TRUSTED_ORIGINS"] == ["https://trollama.example.org"]

    def test_the_loopback_endpoints_other_processes_use_are_never_redirected(self, monkeypatch, tmp_path):
        import re

        exempt = load(monkeypatch, tmp_path, **PRODUCTION)["SECURE_REDIRECT_EXEMPT"]

        for path in ("internal/events", "health", "metrics"):
            assert any(re.search(pattern, path) for pattern in exempt), path
        assert not any(re.search(pattern, "admin/") for pattern in exempt)

    def test_production_requires_a_secret_key(self, monkeypatch, tmp_path):
        with pytest.raises(ImproperlyConfigured, match="SECRET_KEY is required"):
            load(monkeypatch, tmp_path, **{**PRODUCTION, "SECRET_KEY": ""})

        assert not (tmp_path / "secret_key").exists()

    def test_production_refuses_debug(self, monkeypatch, tmp_path):
        with pytest.raises(ImproperlyConfigured, match="DEBUG must be false"):
            load(monkeypatch, tmp_path, **PRODUCTION, DEBUG="true")

    def test_the_embedded_default_stays_plain_http(self, monkeypatch, tmp_path):
        settings = load(monkeypatch, tmp_path)

        assert not settings["IS_PRODUCTION"]
        assert not settings["SESSION_COOKIE_SECURE"]
        assert not settings["SECURE_SSL_REDIRECT"]
        assert "SECURE_PROXY_SSL_HEADER" not in settings

    def test_check_deploy_is_clean_under_production_settings(self, tmp_path):
        env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path), **PRODUCTION}
        result = subprocess.run(
            [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
            cwd=SETTINGS.parents[1],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

        assert result.returncode == 0, result.stderr + result.stdout
        assert "no issues" in result.stdout


class LoggingSettingsTests:
    def test_text_to_the_console_and_a_daily_file_kept_for_the_retention(self, monkeypatch, tmp_path):
        settings = load(monkeypatch, tmp_path, LOG_RETENTION_DAYS="30")

        handlers = settings["LOGGING"]["handlers"]
        assert handlers["console"]["formatter"] == "text"
        assert handlers["file"]["filename"] == str(tmp_path / "logs" / "trollama.log")
        assert (handlers["file"]["when"], handlers["file"]["backupCount"]) == ("midnight", 30)
        assert settings["LOGGING"]["root"]["handlers"] == ["console", "file"]
        for handler in handlers.values():
            assert handler["filters"] == ["request_id", "redact_secrets"]

    def test_json_and_no_file(self, monkeypatch, tmp_path):
        settings = load(monkeypatch, tmp_path, LOG_FORMAT="json", LOG_TO_FILE="false")

        assert settings["LOGGING"]["handlers"]["console"]["formatter"] == "json"
        assert "file" not in settings["LOGGING"]["handlers"]


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
            ("DJANGO_ENV", "staging"),
            ("LOG_FORMAT", "xml"),
            ("LOG_RETENTION_DAYS", "0"),
            ("METRICS_WINDOW_MINUTES", "forever"),
            ("BEHIND_TLS_PROXY", "perhaps"),
            ("DISCORD_API_URL", "discord.com/api/v10"),
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

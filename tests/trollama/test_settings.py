"""Configuration: the embedded default, production, and every bad value."""

from __future__ import annotations

import re
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
    "WEB_PORT",
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


class WebPortTests:
    def test_web_url_follows_web_port_when_it_is_not_set(self, monkeypatch, tmp_path):
        settings = load(monkeypatch, tmp_path, WEB_PORT="8123")

        assert (settings["WEB_PORT"], settings["WEB_URL"]) == (8123, "http://127.0.0.1:8123")
        assert settings["PUBLIC_URL"] == "http://127.0.0.1:8123"  # download links follow it too

    def test_an_explicit_web_url_wins(self, monkeypatch, tmp_path):
        settings = load(monkeypatch, tmp_path, WEB_PORT="8123", WEB_URL="http://web.internal:9000")

        assert settings["WEB_URL"] == "http://web.internal:9000"

    def test_a_port_out_of_range_is_refused_by_name(self, monkeypatch, tmp_path):
        with pytest.raises(ImproperlyConfigured, match="WEB_PORT has an invalid value '70000'"):
            load(monkeypatch, tmp_path, WEB_PORT="70000")

    def test_the_procfile_passes_web_port_to_daphne(self):
        web = next(
            line for line in (SETTINGS.parents[1] / "Procfile").read_text().splitlines() if line.startswith("web:")
        )

        shown = subprocess.run(
            ["sh", "-c", "echo " + web.removeprefix("web:")], env={"WEB_PORT": "8123"}, capture_output=True, text=True
        ).stdout
        assert "-p 8123 " in shown


def example_env() -> dict[str, str]:
    """The variables .env.example sets, as ``bootstrap`` would copy them into .env."""
    lines = (SETTINGS.parents[1] / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


class ExampleEnvTests:
    def test_loading_the_example_changes_no_setting(self, monkeypatch, tmp_path):
        example = example_env()
        del example["DATA_DIR"]  # both loads use tmp_path (the example's empty value means var/ beside manage.py)
        for name in example:
            monkeypatch.delenv(name, raising=False)
        defaults = load(monkeypatch, tmp_path)

        configured = load(monkeypatch, tmp_path, **example)

        settings = (str, int, float, bool, list, dict, tuple, Path, type(None))  # values, not helpers such as T
        names = sorted(name for name, value in defaults.items() if name.isupper() and isinstance(value, settings))
        assert [(n, configured[n]) for n in names] == [(n, defaults[n]) for n in names]

    def test_the_example_lists_every_variable_the_settings_read(self):
        read = set(re.findall(r'_read\(\s*"([A-Z0-9_]+)"', SETTINGS.read_text()))

        assert read - set(example_env()) == set()


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

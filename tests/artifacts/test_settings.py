"""Artifact settings: local by default, S3-compatible by settings, bad values named."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from tests.trollama.test_settings import load


class ArtifactSettingsTests:
    def test_defaults_are_local_files_kept_twelve_hours(self, monkeypatch, tmp_path):
        settings = load(monkeypatch, tmp_path, WEB_URL="http://10.0.0.5:8000")

        assert settings["STORAGES"]["artifacts"]["BACKEND"] == "django.core.files.storage.FileSystemStorage"
        assert settings["ARTIFACT_TTL_HOURS"] == 12
        assert settings["ARTIFACT_MAX_BYTES"] == 8_000_000
        assert settings["PUBLIC_URL"] == "http://10.0.0.5:8000"

    def test_s3_storage_is_configured_from_the_environment(self, monkeypatch, tmp_path):
        settings = load(
            monkeypatch,
            tmp_path,
            ARTIFACT_STORAGE="s3",
            ARTIFACT_S3_BUCKET="trollama-files",
            ARTIFACT_S3_ENDPOINT_URL="http://minio:9000",
            ARTIFACT_S3_ACCESS_KEY_ID="key",
            ARTIFACT_S3_SECRET_ACCESS_KEY="secret",
            PUBLIC_URL="https://trollama.example.org/",
        )

        config = settings["STORAGES"]["artifacts"]
        assert config["BACKEND"] == "storages.backends.s3.S3Storage"
        assert config["OPTIONS"]["bucket_name"] == "trollama-files"
        assert config["OPTIONS"]["endpoint_url"] == "http://minio:9000"
        assert settings["PUBLIC_URL"] == "https://trollama.example.org"
        from storages.backends.s3 import S3Storage

        storage = S3Storage(**config["OPTIONS"])  # the options are ones django-storages accepts
        assert storage.bucket_name == "trollama-files" and storage.file_overwrite is False

    def test_s3_without_a_bucket_stops_start_up_naming_the_variable(self, monkeypatch, tmp_path):
        with pytest.raises(ImproperlyConfigured, match="ARTIFACT_S3_BUCKET"):
            load(monkeypatch, tmp_path, ARTIFACT_STORAGE="s3")

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("ARTIFACT_STORAGE", "ftp"),
            ("ARTIFACT_TTL_HOURS", "0"),
            ("ARTIFACT_MAX_SIZE_MB", "lots"),
            ("PUBLIC_URL", "x"),
        ],
    )
    def test_bad_values_are_refused_by_name(self, monkeypatch, tmp_path, name, value):
        with pytest.raises(ImproperlyConfigured, match=name):
            load(monkeypatch, tmp_path, **{name: value})

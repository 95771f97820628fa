"""manage.py bootstrap: the admin account it makes has a password the validators accept."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.management import CommandError, call_command


@pytest.mark.django_db
class BootstrapTests:
    def test_the_generated_password_passes_the_validators_and_signs_in(self, settings, tmp_path, client):
        settings.DATA_DIR, settings.ADMIN_PASSWORD = tmp_path, ""

        call_command("bootstrap", verbosity=0)

        username, password = (tmp_path / "admin-password.txt").read_text().split()
        validate_password(password, User(username=username))  # raises if not
        assert client.post("/admin/login/", {"username": username, "password": password}).status_code == 302

    def test_a_weak_admin_password_is_refused_with_the_reasons(self, settings, tmp_path):
        settings.DATA_DIR, settings.ADMIN_PASSWORD = tmp_path, "1"

        with pytest.raises(CommandError, match="ADMIN_PASSWORD is too weak: This password is too short"):
            call_command("bootstrap", verbosity=0)

        assert not User.objects.filter(username=settings.ADMIN_USERNAME).exists()

    def test_a_strong_admin_password_is_used(self, settings, tmp_path, client):
        settings.DATA_DIR, settings.ADMIN_PASSWORD = tmp_path, "e2e-password"

        call_command("bootstrap", verbosity=0)

        assert User.objects.get(username=settings.ADMIN_USERNAME).check_password("e2e-password")
        assert not (tmp_path / "admin-password.txt").exists()

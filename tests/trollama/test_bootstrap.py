"""manage.py bootstrap: a .env to edit, and an admin account whose password the validators accept."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.management import CommandError, call_command

from trollama import dotenv

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(autouse=True)
def checkout(tmp_path, monkeypatch) -> Path:
    """A checkout of our own: .env.example copied in, no .env, so the real checkout's files are never touched."""
    root = tmp_path / "checkout"
    root.mkdir()
    (root / ".env.example").write_text(dotenv.EXAMPLE.read_text())
    monkeypatch.setattr(dotenv, "DOTENV", root / ".env")
    monkeypatch.setattr(dotenv, "EXAMPLE", root / ".env.example")
    return root


def bootstrap(*args: str) -> str:
    out = io.StringIO()
    call_command("bootstrap", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
class BootstrapTests:
    def test_the_generated_password_passes_the_validators_and_signs_in(self, settings, tmp_path, client):
        settings.DATA_DIR, settings.ADMIN_PASSWORD = tmp_path, ""

        output = bootstrap()

        password = (tmp_path / "admin-password.txt").read_text()
        assert password.endswith("\n") and password.count("\n") == 1  # the password alone, on one line
        password = password.strip()
        assert f"Password: {password}" in output and f"User name: {settings.ADMIN_USERNAME}" in output
        validate_password(password, User(username=settings.ADMIN_USERNAME))  # raises if not
        assert client.post("/admin/login/", {"username": "admin", "password": password}).status_code == 302

    def test_the_readme_describes_the_password_file_as_it_is_written(self):
        first_lines = README.read_text().split("# Trollama", 1)[0]

        assert re.search(r"`var/admin-password\.txt` holds the password alone", first_lines)
        assert "user name `admin`" in first_lines
        assert "**The one setting to change is `OLLAMA_HOST` in `.env`**" in first_lines

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


@pytest.mark.django_db
class DotenvTests:
    def test_a_missing_env_file_is_made_from_the_example_and_names_ollama_host(self, settings, tmp_path, checkout):
        settings.DATA_DIR, settings.ADMIN_PASSWORD = tmp_path, "e2e-password"

        output = bootstrap()

        assert (checkout / ".env").read_text() == (checkout / ".env.example").read_text()
        assert "from .env.example" in output and "set OLLAMA_HOST there" in output

    def test_an_existing_env_file_is_left_as_it_is(self, settings, tmp_path, checkout):
        settings.DATA_DIR, settings.ADMIN_PASSWORD = tmp_path, "e2e-password"
        (checkout / ".env").write_text("OLLAMA_HOST=http://gpu-box:11434\n")

        output = bootstrap()

        assert (checkout / ".env").read_text() == "OLLAMA_HOST=http://gpu-box:11434\n"
        assert "from .env.example" not in output

    def test_no_dotenv_leaves_the_checkout_alone(self, settings, tmp_path, checkout):
        settings.DATA_DIR, settings.ADMIN_PASSWORD = tmp_path, "e2e-password"

        bootstrap("--no-dotenv")

        assert not (checkout / ".env").exists()

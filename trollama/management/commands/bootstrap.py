"""Prepare a fresh install: a .env to edit, database tables, cache table and an admin account."""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from trollama import dotenv


def generate_password(username: str) -> str:
    """A random password that the password validators accept (retrying the rare one they would not)."""
    User = get_user_model()
    while True:
        password = secrets.token_urlsafe(18)
        try:
            validate_password(password, User(username=username))
        except ValidationError:
            continue
        return password


class Command(BaseCommand):
    help = "Create .env if missing, apply migrations, create the cache table and make sure an admin account exists."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--no-dotenv",
            action="store_true",
            help="Do not create .env (for installs configured through the environment alone, and the tests).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["no_dotenv"]:
            self.ensure_dotenv()
        call_command("migrate", interactive=False, verbosity=options["verbosity"] - 1 if options["verbosity"] else 0)
        call_command("createcachetable", verbosity=0)
        self.ensure_admin()

    def ensure_dotenv(self) -> None:
        if dotenv.create_dotenv():
            self.stdout.write(
                f"Created {dotenv.DOTENV} from .env.example. If Ollama is not at {settings.OLLAMA_HOST}, "
                "set OLLAMA_HOST there and restart `honcho start`."
            )
        else:
            self.stdout.write(f"Settings are read from {dotenv.DOTENV}; OLLAMA_HOST is {settings.OLLAMA_HOST}.")

    def ensure_admin(self) -> None:
        User = get_user_model()
        username = settings.ADMIN_USERNAME
        if User.objects.filter(username=username).exists():
            self.stdout.write(f"Admin account {username!r} already exists; sign in at {settings.WEB_URL}/admin/.")
            return
        password = settings.ADMIN_PASSWORD or generate_password(username)
        try:
            # The same rules as the admin's password form (AUTH_PASSWORD_VALIDATORS).
            validate_password(password, User(username=username))
        except ValidationError as error:
            raise CommandError(f"ADMIN_PASSWORD is too weak: {' '.join(error.messages)} Choose another.") from None
        User.objects.create_superuser(username=username, password=password, email="")
        self.stdout.write(self.style.SUCCESS(f"Created admin account {username!r}."))
        if settings.ADMIN_PASSWORD:
            self.stdout.write("Its password is the one in ADMIN_PASSWORD.")
        else:
            note = settings.DATA_DIR / "admin-password.txt"
            # The password alone, as the README says: `cat` it, or paste the file's one line.
            note.write_text(f"{password}\n")
            note.chmod(0o600)
            self.stdout.write(f"User name: {username}")
            self.stdout.write(f"Password: {password}   (also saved in {note}; change it in the admin)")
        self.stdout.write(f"Sign in at {settings.WEB_URL}/admin/.")

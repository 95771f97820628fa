"""Failed sign-ins on the console and the admin are throttled (django-axes), and passwords follow the validators."""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.test import Client

from tests import personas

PASSWORD = "correct horse"  # the staff persona's
LOGINS = {"console": "/console/login/", "admin": "/admin/login/"}


def sign_in(client: Client, path: str, password: str, **extra):
    return client.post(path, {"username": "ada", "password": password}, **extra)


@pytest.mark.django_db
class LoginThrottlingTests:
    @pytest.mark.parametrize("site", LOGINS)
    def test_wrong_passwords_lock_out_even_the_right_one_until_the_cool_off(self, site):
        personas.staff_admin()
        client = Client()
        path = LOGINS[site]

        failures = [sign_in(client, path, f"wrong-{n}").status_code for n in range(settings.AXES_FAILURE_LIMIT)]
        locked = sign_in(client, path, PASSWORD)

        assert failures[:-1] == [200] * (settings.AXES_FAILURE_LIMIT - 1)  # the form again, with its error
        assert failures[-1] == 429
        assert locked.status_code == 429
        assert "Too many failed sign-ins" in locked.content.decode()
        assert "_auth_user_id" not in client.session
        assert client.get("/console/").status_code == 302  # still signed out

        AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time - settings.AXES_COOLOFF_TIME)
        after = sign_in(client, path, PASSWORD)

        assert after.status_code == 302
        assert client.get("/console/").status_code == 200

    def test_the_lockout_holds_across_the_console_and_the_admin(self):
        personas.staff_admin()
        client = Client()
        for n in range(settings.AXES_FAILURE_LIMIT):
            sign_in(client, LOGINS["console"], f"wrong-{n}")

        assert sign_in(client, LOGINS["admin"], PASSWORD).status_code == 429

    def test_another_address_is_not_locked_out(self):
        personas.staff_admin()
        client = Client()
        for n in range(settings.AXES_FAILURE_LIMIT):
            sign_in(client, LOGINS["console"], f"wrong-{n}", REMOTE_ADDR="203.0.113.9")

        assert sign_in(Client(), LOGINS["console"], PASSWORD, REMOTE_ADDR="198.51.100.4").status_code == 302

    def test_changing_the_user_agent_does_not_reset_the_count(self):
        personas.staff_admin()
        client = Client()
        for n in range(settings.AXES_FAILURE_LIMIT):
            sign_in(client, LOGINS["console"], f"wrong-{n}", HTTP_USER_AGENT=f"agent-{n}")

        assert sign_in(client, LOGINS["console"], PASSWORD, HTTP_USER_AGENT="fresh").status_code == 429

    def test_a_success_before_the_limit_clears_the_failures(self):
        personas.staff_admin()
        client = Client()
        for n in range(settings.AXES_FAILURE_LIMIT - 1):
            sign_in(client, LOGINS["console"], f"wrong-{n}")
        assert sign_in(client, LOGINS["console"], PASSWORD).status_code == 302
        client.logout()

        for n in range(settings.AXES_FAILURE_LIMIT - 1):
            sign_in(client, LOGINS["console"], f"wrong-again-{n}")

        assert sign_in(client, LOGINS["console"], PASSWORD).status_code == 302


class PasswordValidatorTests:
    @pytest.mark.parametrize("password", ["1", "short-pw", "12345678901", "password123"])
    def test_weak_passwords_are_refused(self, password):
        with pytest.raises(ValidationError):
            validate_password(password, User(username="admin"))

    def test_a_long_random_password_passes(self):
        validate_password("vX3-q9Lm_2pTz8Rk", User(username="admin"))

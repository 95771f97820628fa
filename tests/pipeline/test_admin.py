"""The admin pages operators read for token calibration and a request's notices."""

from __future__ import annotations

import pytest
from django.urls import reverse

from conversations.models import Request, TokenCalibration
from tests import personas
from tests.conversations.helpers import History

CALIBRATION = reverse("admin:conversations_tokencalibration_changelist")


@pytest.mark.django_db
class TokenCalibrationAdminTests:
    def test_staff_see_each_models_ratio_and_samples(self, client):
        TokenCalibration.objects.create(model="qwen3:8b", ratio=0.87, samples=42)
        client.force_login(personas.staff_admin())

        response = client.get(CALIBRATION)

        assert response.status_code == 200
        assert "qwen3:8b" in response.text and "0.87" in response.text and "42" in response.text

    def test_anonymous_users_are_sent_to_sign_in_and_others_are_refused(self, client):
        assert client.get(CALIBRATION).status_code == 302
        client.force_login(personas.outsider())
        assert client.get(CALIBRATION).status_code == 302

    def test_a_requests_page_shows_its_notices(self, client):
        request = History().ask("hi")
        Request.objects.filter(pk=request.pk).update(notices=[{"code": "turns_dropped", "count": 7}])
        client.force_login(personas.staff_admin())

        response = client.get(reverse("admin:conversations_request_change", args=[request.pk]))

        assert response.status_code == 200
        assert "turns_dropped" in response.text

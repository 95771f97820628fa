from __future__ import annotations

import pytest
from django.test import Client

from conversations.models import Request
from pipeline.services import submit_request
from tests import personas


@pytest.fixture
def staff_client(db) -> Client:
    client = Client()
    client.force_login(personas.staff_admin())
    return client


@pytest.fixture
def outsider_client(db) -> Client:
    client = Client()
    client.force_login(personas.outsider())
    return client


@pytest.fixture
def queued_request(db) -> Request:
    alice = personas.discord_user()
    return submit_request(user=alice, thread=personas.thread_of(alice), content="What is 2 + 2?", enqueue=False).request

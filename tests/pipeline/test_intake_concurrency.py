"""Intakes racing for the last places in the queue, in real threads against real PostgreSQL.

SQLite's IMMEDIATE transactions make intakes take turns anyway; the race is
PostgreSQL's, so this test skips elsewhere.
"""

from __future__ import annotations

import pytest
from django.db import connection

from conversations.models import Request
from pipeline.services import Refusal, submit_request
from tests import personas
from tests.concurrency import race

RACERS = 12
MAX_QUEUE = 5


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_racing_intakes_never_queue_more_than_the_maximum(settings):
    if connection.vendor != "postgresql":
        pytest.skip("the concurrency test needs PostgreSQL (DATABASE_URL=postgres://...)")
    settings.MAX_QUEUE_SIZE = MAX_QUEUE
    # Different people, so no rate limit or budget gets in the way: only the queue's size.
    threads = [personas.thread_of(personas.discord_user(f"user{n}", str(2000 + n)), f"t{n}") for n in range(RACERS)]

    def submit(index: int) -> object:
        thread = threads[index]
        return submit_request(user=thread.owner, thread=thread, content=f"question {index}", enqueue=False)

    results = race(submit, list(range(RACERS)))

    refused = [r for r in results if isinstance(r, Refusal)]
    assert len(refused) == RACERS - MAX_QUEUE, results
    assert {r.code for r in refused} == {"queue_full"}
    assert Request.objects.filter(status=Request.Status.QUEUED).count() == MAX_QUEUE

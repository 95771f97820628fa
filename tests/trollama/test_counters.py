"""Stored counters: they only grow, and racing writers lose nothing."""

from __future__ import annotations

import pytest
from django.db import transaction

from tests.concurrency import race
from trollama.counters import counter_values, increment
from trollama.models import MetricCounter


@pytest.mark.django_db
class IncrementTests:
    def test_it_adds_per_label_set(self):
        increment(name="things", labels={"a": "1", "b": "2"}, amount=5)
        increment(name="things", labels={"b": "2", "a": "1"}, amount=3)  # same labels, other order
        increment(name="things", labels={"a": "other"}, amount=1)

        assert counter_values("things") == [({"a": "1", "b": "2"}, 8), ({"a": "other"}, 1)]

    @pytest.mark.parametrize("amount", [0, -5])
    def test_it_never_goes_down(self, amount):
        increment(name="things", labels={}, amount=2)

        increment(name="things", labels={}, amount=amount)

        assert counter_values("things") == [({}, 2)]

    def test_it_rolls_back_with_the_transaction_it_counts_in(self):
        with pytest.raises(RuntimeError), transaction.atomic():
            increment(name="things", labels={}, amount=2)
            raise RuntimeError("the answer was not stored")

        assert not MetricCounter.objects.exists()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class RacingIncrementTests:
    def test_racing_first_increments_of_one_label_set_all_count(self):
        def add(amount: int) -> None:
            with transaction.atomic():
                increment(name="raced", labels={"route": "general"}, amount=amount)

        results = race(add, [1] * 8)

        assert results == [None] * 8
        assert counter_values("raced") == [({"route": "general"}, 8)]

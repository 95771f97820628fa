"""The data migrations that load the shipped route examples: each batch comes and goes on its own."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from routing import training
from routing.models import Route, RouteExample

BEFORE = ("routing", "0007_breaker_counts_requests")
FIRST_BATCH = 514  # the lines 0006 loaded when it shipped


def shipped() -> list[dict[str, str]]:
    return [json.loads(line) for line in training.SHIPPED_EXAMPLES.read_text().splitlines() if line.strip()]


def migrate(targets: list[tuple[str, str]]) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)


def leaves() -> list[tuple[str, str]]:
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


def stored_pairs() -> set[tuple[str, str]]:
    return set(RouteExample.objects.filter(source="trollama").values_list("route__slug", "text"))


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class MoreVariedExamplesMigrationTests:
    def test_reversing_it_keeps_the_first_batch_and_what_operators_added_then_reapplying_restores_the_rest(self):
        lines = shipped()
        assert len(lines) > FIRST_BATCH
        operator_example = RouteExample.objects.create(
            route=Route.objects.get(slug="general"), text="An operator's own example", source="operator"
        )
        targets = leaves()
        try:
            migrate([BEFORE])

            assert stored_pairs() == {(row["route"], row["text"]) for row in lines[:FIRST_BATCH]}
            assert RouteExample.objects.filter(pk=operator_example.pk).exists()

            migrate(targets)

            assert stored_pairs() == {(row["route"], row["text"]) for row in lines}
        finally:
            migrate(targets)

    def test_every_shipped_line_is_ours_and_names_an_existing_route(self):
        routes = set(Route.objects.values_list("slug", flat=True))
        for row in shipped():
            assert row["source"] == "trollama" and row["licence"] == "same as Trollama"
            assert row["route"] in routes and row["route"] != "vision"
            assert row["text"].strip()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class ResearchExamplesMigrationTests:
    def test_reversing_it_removes_the_situatedqa_rows_and_our_later_lines_then_reapplying_restores_them(self):
        lines = shipped()
        later = {(row["route"], row["text"]) for row in lines[1806:]}
        assert later
        targets = leaves()
        try:
            migrate([("routing", "0013_router_state_version")])

            assert not RouteExample.objects.filter(source__startswith="situatedqa ").exists()
            assert not stored_pairs() & later
            assert RouteExample.objects.filter(source__startswith="gsm8k train #").exists()  # 0011's stay

            migrate(targets)

            assert RouteExample.objects.filter(source__startswith="situatedqa train #", route__slug="research").exists()
            assert stored_pairs() == {(row["route"], row["text"]) for row in lines}
        finally:
            migrate(targets)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class OpenQuestionExamplesMigrationTests:
    def test_reversing_it_removes_only_its_own_lines_then_reapplying_restores_them(self):
        lines = shipped()
        own = {(row["route"], row["text"]) for row in lines[1907:]}
        earlier = {(row["route"], row["text"]) for row in lines[:1907]}
        assert own and not own & earlier
        targets = leaves()
        try:
            migrate([("routing", "0015_general_route_examples_from_gpteacher_roleplay")])

            assert stored_pairs() == earlier  # 0014's lines stay: it loads a fixed slice now

            migrate(targets)

            assert stored_pairs() == earlier | own
        finally:
            migrate(targets)

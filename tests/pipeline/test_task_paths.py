"""The pipeline's tasks moved from conversations.tasks: stored paths are moved, and old ones still run."""

from __future__ import annotations

from importlib import import_module

import pytest
from django.apps import apps
from django.utils.module_loading import import_string
from django_q.models import Schedule

from pipeline import tasks

moved = import_module("pipeline.migrations.0001_tasks_moved_from_conversations")


@pytest.mark.parametrize("name", ["run_request", "requeue_abandoned_requests", "summarize_thread"])
def test_a_task_queued_under_its_old_path_runs_the_same_function(name):
    """django-q2 imports a queued task by its dotted path; work queued before the upgrade names conversations."""
    assert import_string(f"conversations.tasks.{name}") is getattr(tasks, name)


@pytest.mark.django_db
def test_the_sweeper_is_scheduled_under_the_new_path():
    assert Schedule.objects.filter(func="pipeline.tasks.requeue_abandoned_requests").count() == 1
    assert not Schedule.objects.filter(func__startswith="conversations.tasks.").exists()


@pytest.mark.django_db
def test_the_migration_moves_stored_schedules_and_back():
    Schedule.objects.create(func="conversations.tasks.summarize_thread", schedule_type="O", name="by hand")
    Schedule.objects.create(func="knowledge.tasks.embed_pending", schedule_type="O", name="not ours")

    moved.forwards(apps, None)
    assert set(Schedule.objects.filter(name__in=["by hand", "not ours"]).values_list("func", flat=True)) == {
        "pipeline.tasks.summarize_thread",
        "knowledge.tasks.embed_pending",
    }

    moved.backwards(apps, None)
    assert Schedule.objects.get(name="by hand").func == "conversations.tasks.summarize_thread"

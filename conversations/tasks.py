"""Old dotted paths of the request pipeline's django-q2 tasks, kept so an upgrade loses no queued work.

The tasks live in ``pipeline.tasks`` now. Tasks queued before the upgrade (and
``Schedule`` rows a deployment added by hand) still name
``conversations.tasks.<name>``; django-q2 imports that path when it runs them,
so these names must keep resolving. New work is queued under ``pipeline.tasks``
and the migration ``pipeline/0001`` moves the stored schedules. This is the one
import from the data model up to the pipeline (allow-listed in tests/test_layers.py).
"""

from pipeline.tasks import requeue_abandoned_requests, run_request, summarize_thread

__all__ = ["requeue_abandoned_requests", "run_request", "summarize_thread"]

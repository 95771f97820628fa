"""What routing tells the floors above it, so it never imports them.

Budgets sits above routing (a usage entry points at the route it was spent on), so
the router does not call ``budgets.usage`` itself: it sends ``model_called`` for
each call it makes on a user's behalf (an embedding, a router model's answer), as
``knowledge`` does for a question's embedding (budgets stands beside it), and
``budgets`` (``BudgetsConfig.ready``) records it with ``budgets.usage.record_usage``.
Receivers run at once, in the sender's thread and transaction, as a direct call did.
"""

from __future__ import annotations

from django.dispatch import Signal

# Sent with the keyword arguments of ``budgets.usage.record_usage``: user, kind, model,
# prompt_tokens, completion_tokens, request (and route, estimated when known).
model_called = Signal()


def record_usage(**usage: object) -> None:
    """Tell whoever keeps the accounts (``budgets``) what one model call cost."""
    model_called.send(sender=record_usage, **usage)

"""On PostgreSQL, make the (user, created_at) usage index covering.

With ``INCLUDE (total_tokens)`` the week's sum for one user reads only the
index (an index-only scan), never the table. Django keeps describing the
index as (user, created_at), which is what other databases get; the name is
unchanged, so later migrations that touch it still find it. See
``bench/budget.py`` for the difference it makes.
"""

from django.db import migrations

COVERING = (
    "CREATE INDEX usage_user_created ON budgets_usageentry (user_id, created_at) INCLUDE (total_tokens)"
)
PLAIN = "CREATE INDEX usage_user_created ON budgets_usageentry (user_id, created_at)"


def _rebuild(schema_editor, create: str) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("DROP INDEX IF EXISTS usage_user_created")
    schema_editor.execute(create)


def make_covering(apps, schema_editor):
    _rebuild(schema_editor, COVERING)


def make_plain(apps, schema_editor):
    _rebuild(schema_editor, PLAIN)


class Migration(migrations.Migration):
    dependencies = [("budgets", "0003_seed_tiers")]

    operations = [migrations.RunPython(make_covering, make_plain, elidable=False)]

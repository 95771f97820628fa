"""Seed the free (default) and admin tiers.

Their allowance is left empty, which means it follows FREE_TIER_WEEKLY_BUDGET
and ADMIN_TIER_WEEKLY_BUDGET; an operator who types a number in the admin
takes the tier off the setting.
"""

from django.db import migrations

TIERS = [
    {"slug": "free", "name": "Free", "is_default": True, "rate_limit_exempt": False},
    {"slug": "admin", "name": "Admin", "is_default": False, "rate_limit_exempt": True},
]


def seed(apps, schema_editor):
    Tier = apps.get_model("budgets", "Tier")
    has_default = Tier.objects.filter(is_default=True).exists()
    for tier in TIERS:
        defaults = {**tier, "is_default": tier["is_default"] and not has_default}
        Tier.objects.get_or_create(slug=tier["slug"], defaults=defaults)


def unseed(apps, schema_editor):
    apps.get_model("budgets", "Tier").objects.filter(slug__in=[t["slug"] for t in TIERS]).delete()


class Migration(migrations.Migration):
    dependencies = [("budgets", "0002_grants_role_tiers_estimated_usage")]

    operations = [migrations.RunPython(seed, unseed)]

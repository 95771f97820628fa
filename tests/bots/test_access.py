"""Who the bot answers: the DISCORD_* settings and the admin's access rules, read together."""

from __future__ import annotations

import pytest

from bots.models import AccessRule, DiscordAccess
from bots.selectors import access_policy


@pytest.mark.django_db
class AccessPolicySelectorTests:
    def test_the_default_answers_everyone_everywhere(self):
        policy = access_policy()

        assert policy.dms is True
        assert not (policy.guilds or policy.channels or policy.allowed_roles or policy.blocked_users)

    def test_the_admins_rules_add_to_the_settings(self, settings):
        settings.DISCORD_ALLOWED_ROLES = [7]
        settings.DISCORD_BLOCKED_USERS = [5]
        AccessRule.objects.create(kind=AccessRule.Kind.ROLE, action=AccessRule.Action.ALLOW, discord_id=8)
        AccessRule.objects.create(kind=AccessRule.Kind.USER, action=AccessRule.Action.BLOCK, discord_id=6)
        AccessRule.objects.create(kind=AccessRule.Kind.CHANNEL, discord_id=10)

        policy = access_policy()

        assert policy.allowed_roles == {7, 8}
        assert policy.blocked_users == {5, 6}
        assert policy.channels == {10}
        assert not policy.blocked_roles and not policy.allowed_users

    @pytest.mark.parametrize(
        ("row", "setting", "expected"),
        [(None, False, False), ("setting", False, False), ("on", False, True), ("off", True, False)],
    )
    def test_direct_messages_follow_the_admins_row_unless_it_defers_to_the_setting(
        self, settings, row, setting, expected
    ):
        settings.DISCORD_ALLOW_DMS = setting
        if row is not None:
            DiscordAccess.objects.create(direct_messages=row)

        assert access_policy().dms is expected

    def test_a_server_cannot_be_blocked(self):
        from django.db import IntegrityError, transaction

        with pytest.raises(IntegrityError), transaction.atomic():
            AccessRule.objects.create(kind=AccessRule.Kind.GUILD, action=AccessRule.Action.BLOCK, discord_id=1)


@pytest.mark.django_db
class AccessAdminTests:
    def test_the_rules_are_edited_in_the_admin(self, admin_client):
        response = admin_client.post(
            "/admin/bots/accessrule/add/", {"kind": "user", "action": "block", "discord_id": "42", "note": "spam"}
        )

        assert response.status_code == 302
        assert AccessRule.objects.get().discord_id == 42
        assert access_policy().blocked_users == {42}

    def test_direct_messages_have_one_row(self, admin_client):
        assert admin_client.get("/admin/bots/discordaccess/add/").status_code == 200
        DiscordAccess.objects.create(direct_messages="off")

        assert admin_client.get("/admin/bots/discordaccess/add/").status_code == 403

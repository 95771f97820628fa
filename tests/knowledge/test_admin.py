"""Opting channels in and removing them from the admin."""

from __future__ import annotations

import pytest
from django.urls import reverse

from knowledge import services
from knowledge.models import IndexedChannel, IndexedMessage
from tests import personas
from tests.knowledge.helpers import GUILD, index_channel, said

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(personas.staff_admin())
    return client


class IndexedChannelAdminTests:
    def test_an_operator_opts_a_channel_in(self, admin_client):
        response = admin_client.post(
            reverse("admin:knowledge_indexedchannel_add"),
            {
                "guild_id": GUILD,
                "channel_id": 777,
                "name": "announcements",
                "added_by": "ada",
                "created_at_0": "2026-03-01",
                "created_at_1": "10:00:00",
            },
        )

        assert response.status_code == 302, response.content.decode()[:2000]
        assert services.indexed_channels() == {777: GUILD}

    def test_the_list_shows_message_counts_and_backlog(self, admin_client):
        index_channel(11, "general")
        services.record_messages(messages=[said("one", channel_id=11), said("two", channel_id=11)])

        page = admin_client.get(reverse("admin:knowledge_indexedchannel_changelist")).content.decode()

        assert "#general" in page
        assert '<td class="field-message_count">2</td>' in page
        assert '<td class="field-backlog">2</td>' in page

    def test_deleting_a_channel_deletes_its_entries(self, admin_client):
        index_channel(11, "general")
        services.record_messages(messages=[said("one", channel_id=11)])
        channel = IndexedChannel.objects.get()

        response = admin_client.post(
            reverse("admin:knowledge_indexedchannel_delete", args=[channel.pk]), {"post": "yes"}
        )

        assert response.status_code == 302
        assert not IndexedChannel.objects.exists() and not IndexedMessage.objects.exists()

    def test_messages_cannot_be_added_by_hand(self, admin_client):
        assert admin_client.get(reverse("admin:knowledge_indexedmessage_add")).status_code == 403

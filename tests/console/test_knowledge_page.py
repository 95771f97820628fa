from __future__ import annotations

import pytest
from django.urls import reverse

from knowledge import services
from knowledge.models import IndexedChannel, IndexedMessage
from tests.knowledge.helpers import GUILD, index_channel, said

pytestmark = pytest.mark.django_db


class KnowledgePageTests:
    def test_it_shows_each_channels_count_backlog_last_indexed_time_and_errors(self, staff_client, fake_ollama):
        index_channel(11, "general")
        index_channel(12, "dev")
        services.record_messages(messages=[said("one", channel_id=11), said("two", channel_id=11)])
        services.embed_pending()
        services.record_messages(messages=[said("three", channel_id=11), said("four", channel_id=12)])
        fake_ollama.remove_model("all-minilm")
        services.embed_pending()

        response = staff_client.get(reverse("console:knowledge"))

        assert response.status_code == 200
        page = response.content.decode()
        assert '<tr data-channel-id="11">' in page and '<tr data-channel-id="12">' in page
        start = page.index('<tr data-channel-id="11">')
        general = page[start : page.index("</tr>", start)]
        assert '<td class="num" data-messages>3</td>' in general
        assert '<td class="num" data-backlog>1</td>' in general
        assert "never" not in general  # embedded once
        assert "ollama pull all-minilm" in page
        assert "data-embedding-error" in page

    def test_removing_a_channel_deletes_its_entries(self, staff_client):
        index_channel(11, "general")
        services.record_messages(messages=[said("one", channel_id=11)])
        channel = IndexedChannel.objects.get()

        response = staff_client.post(reverse("console:knowledge-remove", args=[channel.pk]))

        assert response.status_code == 302 and response.url == reverse("console:knowledge")
        assert not IndexedChannel.objects.exists() and not IndexedMessage.objects.exists()

    def test_anonymous_is_sent_to_log_in_and_non_staff_refused(self, client, outsider_client):
        assert client.get(reverse("console:knowledge")).status_code == 302
        assert outsider_client.get(reverse("console:knowledge")).status_code == 403

    def test_remove_needs_post_and_a_known_channel(self, staff_client):
        index_channel(11, "general", guild_id=GUILD)
        channel = IndexedChannel.objects.get()

        assert staff_client.get(reverse("console:knowledge-remove", args=[channel.pk])).status_code == 405
        assert staff_client.post(reverse("console:knowledge-remove", args=[channel.pk + 99])).status_code == 404
        assert IndexedChannel.objects.exists()

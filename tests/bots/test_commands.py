import pytest

from bots.commands.general import help_text
from routing.models import Route


@pytest.mark.django_db
def test_help_lists_commands_and_enabled_routes():
    text = help_text(Route.objects.filter(enabled=True))

    assert "/cancel" in text and "/help" in text
    assert "`general`: General chat (gpt-oss:20b)" in text

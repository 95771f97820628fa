import pytest

from bots.client import TrollamaBot
from bots.commands import command_tree_digest
from bots.commands.general import help_text
from routing.models import Route


@pytest.mark.django_db
def test_help_lists_commands_and_enabled_routes():
    text = help_text(Route.objects.filter(enabled=True))

    assert "/cancel" in text and "/help" in text
    assert "`general`: General chat (gpt-oss:20b)" in text


def command_payloads(bot):
    return [command.to_dict(bot.tree) for command in bot.tree.get_commands()]


def test_the_command_digest_changes_only_when_the_commands_do():
    bot, again = TrollamaBot(), TrollamaBot()
    digest = command_tree_digest(command_payloads(bot))

    assert digest == command_tree_digest(command_payloads(again))
    assert digest == command_tree_digest(list(reversed(command_payloads(bot))))

    @again.tree.command(name="extra", description="A command the first bot does not have")
    async def extra(interaction) -> None: ...

    assert command_tree_digest(command_payloads(again)) != digest
    changed = command_payloads(bot)
    changed[0] = {**changed[0], "description": "Described differently"}
    assert command_tree_digest(changed) != digest

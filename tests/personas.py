"""The people tests are about, made the same way everywhere."""

from __future__ import annotations

from django.contrib.auth.models import User

from conversations.models import ChatUser, Platform, Thread
from pipeline.services import get_or_create_chat_user


def staff_admin() -> User:
    return User.objects.create_user("ada", password="correct horse", is_staff=True, is_superuser=True)


def outsider() -> User:
    """Signed in, but not staff."""
    return User.objects.create_user("mallory", password="correct horse")


def discord_user(name: str = "alice", external_id: str = "1001") -> ChatUser:
    return get_or_create_chat_user(
        platform=Platform.DISCORD, external_id=external_id, username=name, display_name=name.title()
    )


def local_user(name: str = "bob") -> ChatUser:
    return get_or_create_chat_user(platform=Platform.LOCAL, external_id=name, username=name)


def thread_of(owner: ChatUser, name: str = "general-chat") -> Thread:
    return Thread.objects.create(platform=owner.platform, external_id=name, title=name, owner=owner)

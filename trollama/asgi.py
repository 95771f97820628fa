"""ASGI entry point for web: HTTP (admin, console, health, relay) and websockets.

Served by Daphne as ONE process on the embedded default, because the
in-memory channel layer that relays events lives in this process.
"""

import os

from trollama.dotenv import read_dotenv

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trollama.settings")
read_dotenv()

from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.utils.module_loading import import_string  # noqa: E402

from trollama import events  # noqa: E402

events.mark_as_hub()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AuthMiddlewareStack(
            URLRouter(import_string(f"{settings.WEBSOCKET_URLCONF}.websocket_urlpatterns"))
        ),
    }
)

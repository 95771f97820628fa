"""Reading the operator's .env file at process start-up."""

from pathlib import Path

import environ

DOTENV = Path(__file__).resolve().parent.parent / ".env"


def read_dotenv() -> None:
    """Load .env into the environment; variables already set win.

    Called by the entry points (manage.py, asgi.py) rather than by settings,
    so the test suite never picks up a developer's .env by accident.
    """
    if DOTENV.exists():
        environ.Env.read_env(DOTENV, overwrite=False)

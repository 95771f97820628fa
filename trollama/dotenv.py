"""Reading the operator's .env file at process start-up, and making it on a fresh install."""

import shutil
from pathlib import Path

import environ

DOTENV = Path(__file__).resolve().parent.parent / ".env"
EXAMPLE = DOTENV.with_name(".env.example")


def read_dotenv() -> None:
    """Load .env into the environment; variables already set win.

    Called by the entry points (manage.py, asgi.py) rather than by settings,
    so the test suite never picks up a developer's .env by accident.
    """
    if DOTENV.exists():
        environ.Env.read_env(DOTENV, overwrite=False)


def create_dotenv() -> bool:
    """Copy .env.example to .env when there is no .env yet; True if it was made.

    Every line of the example is the default (tests/trollama/test_settings.py
    checks that loading it changes nothing), so the copy only gives the operator
    a file to edit. An existing .env is never touched.
    """
    if DOTENV.exists():
        return False
    shutil.copyfile(EXAMPLE, DOTENV)
    return True

"""manage.py runbot without a token."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

ROOT = Path(__file__).resolve().parents[2]


class RunbotTests:
    def test_without_a_token_it_exits_naming_the_variable(self, settings):
        settings.DISCORD_TOKEN = ""

        with pytest.raises(CommandError, match="DISCORD_TOKEN is not set"):
            call_command("runbot")

    def test_optional_mode_says_so_and_idles_until_stopped(self, tmp_path):
        env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path)}
        process = subprocess.Popen(
            [sys.executable, "manage.py", "runbot", "--optional"],
            cwd=ROOT,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stderr is not None
        line = process.stderr.readline()
        assert process.poll() is None, "it must stay up so honcho keeps the other processes"

        process.send_signal(signal.SIGTERM)

        assert process.wait(timeout=10) == 0
        assert "DISCORD_TOKEN is not set" in line and "Web and workers keep running" in line

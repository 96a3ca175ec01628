"""The README's first command as a user runs it: `batchtui --demo` in a real terminal (tmux)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest

pytestmark = [pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"), pytest.mark.slow]


def screen(session: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-t", session, "-p"], capture_output=True, text=True).stdout


def wait_screen(session: str, text: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    shown = ""
    while time.monotonic() < deadline:
        shown = screen(session)
        if text in shown:
            return shown
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not on the screen within {timeout} s; the screen shows:\n{shown}")


@pytest.mark.parametrize("size", [(120, 40), (80, 24)])
def test_demo_console_in_a_real_terminal(tmp_path, size):
    session = f"bt-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path / "data"), XDG_CONFIG_HOME=str(tmp_path / "config"),
               TERM="xterm-256color")
    env.pop("BATCHTUI_DB", None)
    batchtui = os.path.join(os.path.dirname(sys.executable), "batchtui")
    width, height = size
    # A running tmux server gives new sessions its own environment: pass ours with -e.
    pass_env = [arg for key in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "TERM", "BATCHTUI_USER", "BATCHTUI_CONFIG")
                if key in env for arg in ("-e", f"{key}={env[key]}")]
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", str(width), "-y", str(height), *pass_env,
                    f"env -u BATCHTUI_DB {batchtui} --demo; echo EXITED $?; sleep 30"], env=env, check=True)
    try:
        shown = wait_screen(session, "E-mail customer")  # the USMF demo jobs are there
        assert "Batch jobs" in shown
        subprocess.run(["tmux", "send-keys", "-t", session, "C-n"], check=True)
        time.sleep(0.5)
        subprocess.run(["tmux", "send-keys", "-t", session, "-l", "Typed in tmux"], check=True)
        subprocess.run(["tmux", "send-keys", "-t", session, "C-s"], check=True)
        shown = wait_screen(session, "Saved batch job ")
        assert "Typed in tmux" in shown
        subprocess.run(["tmux", "send-keys", "-t", session, "C-q"], check=True)
        wait_screen(session, "EXITED 0", timeout=20)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    # The job is really in the demo database, made by the console.
    out = subprocess.run([batchtui, "--db", f"sqlite:///{tmp_path}/data/batchtui/demo.db", "job", "list", "--json"],
                         env=env, capture_output=True, text=True, check=True).stdout
    assert '"Typed in tmux"' in out

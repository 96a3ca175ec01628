"""`--help`, `--version` and `completion`: what an operator at a shell prompt is told."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys

import pytest

from batchtui.cli import build_parser, main
from batchtui.cli.helptext import EXAMPLES

BATCHTUI = [sys.executable, "-m", "batchtui"]


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path
        return
    for name, sub in subs[0].choices.items():
        yield from _leaves(sub, (*path, name))


def test_version_names_the_schema_python_and_textual(capsys):
    assert main(["--version"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("batchtui ") and "(schema " in out and "Python 3." in out and "Textual 8." in out


def test_help_lists_the_environment_and_the_exit_codes(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for needle in ("BATCHTUI_DB", "BATCHTUI_USER", "BATCHTUI_CONFIG", "exit status:", "  2  bad input",
                   "job wait"):
        assert needle in out


@pytest.mark.parametrize("path", list(_leaves(build_parser())), ids=" ".join)
def test_every_command_shows_an_example_of_itself(path, capsys):
    assert main([*path, "--help"]) == 0
    out = capsys.readouterr().out
    assert "example:\n  batchtui " + " ".join(path) in out, out[-300:]
    assert EXAMPLES[" ".join(path)].startswith("batchtui " + " ".join(path))


def _bash_complete(words: str) -> list[str]:
    script = subprocess.run([*BATCHTUI, "completion", "bash"], capture_output=True, text=True, check=True).stdout
    line = f"COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); COMP_LINE='{words}'; " \
           "COMP_POINT=${#COMP_LINE}; _shtab_batchtui; printf '%s\\n' \"${COMPREPLY[@]}\""
    out = subprocess.run(["bash", "-c", script + "\n" + line], capture_output=True, text=True, check=True)
    return out.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_bash_completes_commands_and_sub_commands_from_the_parser():
    assert "job" in _bash_complete("batchtui jo")
    assert set(_bash_complete("batchtui job s")) == {"set", "status"}
    assert "--if-version" in _bash_complete("batchtui job set 7 --if")


def test_zsh_and_fish_scripts_cover_every_command(capsys):
    assert main(["completion", "zsh"]) == 0
    zsh = capsys.readouterr().out
    assert zsh.startswith("#compdef batchtui")
    assert main(["completion", "fish"]) == 0
    fish = capsys.readouterr().out
    for path in _leaves(build_parser()):
        assert f"-a {path[-1]} " in fish, path
    assert "complete -c batchtui -n '__fish_seen_subcommand_from job; and __fish_seen_subcommand_from set' " \
           "-l if-version" in fish


def test_an_unknown_shell_is_one_line_and_exit_2(capsys):
    assert main(["completion", "tcsh"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "batchtui: error: argument SHELL: invalid choice: 'tcsh' (choose from 'bash', 'zsh', 'fish')"]

"""What `--help` adds to the grammar: the environment, the exit codes, an example per command,
and what `--version` says."""

from __future__ import annotations

import argparse
import platform
from importlib.metadata import PackageNotFoundError, version
from typing import Any

ENVIRONMENT = """\
environment:
  BATCHTUI_DB       database URL when --db is not given
                    (sqlite:///ABSOLUTE/PATH.db or postgresql://USER@HOST/DBNAME)
  BATCHTUI_USER     the acting user on SQLite (service accounts); default: the login name
  BATCHTUI_CONFIG   the config file (default: config.toml in the user config folder)

exit status:
  0  success
  1  any other failure (the database cannot be reached, ...)
  2  bad input: usage, validation, unknown ID, refused change, not allowed
     (one line "batchtui: error: ..." on stderr; nothing is changed)
  3, 4, 5  job wait: the run ended in error, was canceled, the wait timed out

The command line reference: docs/cli.md."""

#: One example per command, shown under its --help.
EXAMPLES: dict[str, str] = {
    "demo": "batchtui demo --reset --db sqlite:////srv/batch/demo.db",
    "server": "batchtui server --name AOS1 --threads 8 --groups FIN,INV --log-format json --metrics-port 9464",
    "job": "batchtui job list --status error",
    "job import": "batchtui job import month-end.json --json",
    "job export": "batchtui job export 7 > job7.json",
    "job list": "batchtui job list --company USMF --user admin --limit 20 --json",
    "job set": "batchtui job set 7 --priority high --if-version 3",
    "job status": "batchtui job status 7 waiting",
    "job cancel": "batchtui job cancel 7",
    "job run": "batchtui job run 7",
    "job rerun": "batchtui job rerun 7 --json",
    "job copy": 'batchtui job copy 7 --description "Month-end close (USRT)" --start 2027-01-31T22:00',
    "job delete": "batchtui job delete 7",
    "job wait": "batchtui job wait 7 --timeout 600 && echo ended",
    "job history": "batchtui job history 7 --last 3 --json",
    "job audit": "batchtui job audit 7 --json",
    "alerts": "batchtui alerts --read",
    "cleanup": "batchtui cleanup --older-than 30 --status ended",
    "group": "batchtui group list",
    "group list": "batchtui group list --json",
    "group add": "batchtui group add INV --description Inventory --servers AOS1,AOS2",
    "group set": "batchtui group set INV --max-concurrent 2 --servers AOS1,AOS2",
    "group delete": "batchtui group delete INV",
    "servers set": "batchtui servers set AOS1 --threads 8 --reserved 2 --schedule 18:00-06:00=8,06:00-18:00=2",
    "servers pause": "batchtui servers pause AOS1",
    "servers resume": "batchtui servers resume AOS1",
    "calendar": "batchtui calendar list",
    "calendar list": "batchtui calendar list --json",
    "calendar add": "batchtui calendar add Plant --weekends --country US --subdiv TX --dates 2027-07-05",
    "calendar delete": "batchtui calendar delete Plant",
    "calendar show": "batchtui calendar show Plant --from 2027-01-01 --to 2027-12-31 --json",
    "period": "batchtui period list",
    "period list": "batchtui period list --json",
    "period add": "batchtui period add Night --from 22:00 --to 06:00 --days mon,tue,wed,thu,fri",
    "period delete": "batchtui period delete Night",
    "servers": "batchtui servers --json",
    "classes": "batchtui classes --json",
    "recurrence": "batchtui recurrence preview rec.json --count 5",
    "recurrence preview": "batchtui recurrence preview rec.json --count 5 --after 2027-01-01T00:00",
    "completion": "batchtui completion bash > ~/.local/share/bash-completion/completions/batchtui",
}


def add_example(parser: argparse.ArgumentParser, prog: str) -> None:
    """The example of the command whose parser this is, as its epilog."""
    path = parser.prog.removeprefix(prog).strip()
    example = EXAMPLES.get(path)
    if example:
        parser.epilog = f"example:\n  {example}"


def version_text() -> str:
    """`batchtui --version`: the package, the schema it writes, and what it runs on."""
    from ..migrations import SCHEMA_VERSION

    def of(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return (f"batchtui {of('batchtui')} (schema {SCHEMA_VERSION}, Python {platform.python_version()}, "
            f"Textual {of('textual')}, peewee {of('peewee')})")


class VersionAction(argparse.Action):
    """Like argparse's "version", with the text made only when asked for."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kw: Any) -> None:
        super().__init__(option_strings, dest=dest, nargs=0, help="show the versions and exit", **kw)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(version_text())
        parser.exit()

"""Start a throw-away PostgreSQL server for the tests (and benchmarks).

Used when BATCHTUI_TEST_PG_URL is not set (`.ci/run` sets it after starting
its own server). Runs initdb and pg_ctl from PostgreSQL's bin folder, as the
`postgres` user when we are root (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile


def find_bin(name: str) -> str | None:
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            return path
    return shutil.which(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    def __init__(self) -> None:
        self.initdb = find_bin("initdb")
        self.pg_ctl = find_bin("pg_ctl")
        self.dir: str | None = None
        self.port = 0

    @property
    def available(self) -> bool:
        return bool(self.initdb and self.pg_ctl)

    def _run(self, args: list[str]) -> None:
        if os.geteuid() == 0:
            args = ["runuser", "-u", "postgres", "--"] + args
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self, options: str = "") -> str:
        """Start it; options: more server settings (``-c name=value ...``)."""
        self.dir = tempfile.mkdtemp(prefix="batchtui-pg-")
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        data = os.path.join(self.dir, "data")
        self.port = _free_port()
        self._run([self.initdb, "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"])
        opts = (f"-k {self.dir} -p {self.port} -c listen_addresses=127.0.0.1 -c fsync=off "
                f"-c max_connections=200 -c synchronous_commit=off {options}").strip()
        self._run([self.pg_ctl, "-D", data, "-o", opts, "-l", os.path.join(self.dir, "log"), "-w", "start"])
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        if self.dir:
            try:
                self._run([self.pg_ctl, "-D", os.path.join(self.dir, "data"), "-m", "immediate", "stop"])
            finally:
                shutil.rmtree(self.dir, ignore_errors=True)
                self.dir = None


def create_database(admin_url: str, name: str) -> str:
    """A fresh database on the server of admin_url; returns its URL."""
    import psycopg

    with psycopg.connect(admin_url.replace("postgresql://", "postgresql://", 1), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


if __name__ == "__main__":  # used by .ci/run: start, print the URL, leave running
    import sys

    server = PgServer()
    if not server.available:
        sys.exit("initdb/pg_ctl not found")
    print(server.start())
    print(server.dir)

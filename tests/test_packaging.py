"""What a plain install gives: no PostgreSQL driver needed, zones without a system database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Run batchtui as a fresh process in which `import psycopg` fails, as on a plain install.
WITHOUT_PSYCOPG = ("import sys; sys.modules['psycopg'] = None; "
                   "from batchtui.cli import main; sys.exit(main(sys.argv[1:]))")


def _run(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def test_a_plain_install_needs_no_postgresql_driver(tmp_path):
    url = f"sqlite:///{tmp_path}/plain.db"
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"description": "plain", "tasks": [{"description": "a", "class": "Noop"}]}))
    for args in (["job", "import", str(job)], ["job", "list", "--json"], ["servers", "--json"],
                 ["server", "--exit-when-idle", "--name", "plain"]):
        p = _run(WITHOUT_PSYCOPG, "--db", url, *args)
        assert p.returncode == 0, (args, p.stderr)
        assert "Traceback" not in p.stderr


def test_a_postgresql_url_without_the_driver_says_what_to_install():
    p = _run(WITHOUT_PSYCOPG, "--db", "postgresql://ops@127.0.0.1:1/batch", "job", "list")
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        "batchtui: error: a PostgreSQL database needs the psycopg driver, which is not installed: "
        "pip install 'batchtui[postgres]'"]


def test_time_zones_work_without_a_system_zone_database(tmp_path):
    spec = tmp_path / "rec.json"
    spec.write_text(json.dumps({"pattern": "days", "every": 1, "start": "2026-03-07T02:30:00",
                                "time_zone": "America/Chicago"}))
    # An empty PYTHONTZPATH leaves zoneinfo with the tzdata package only.
    p = _run("import sys; from batchtui.cli import main; sys.exit(main(sys.argv[1:]))",
             "recurrence", "preview", str(spec), "--count", "2", "--json", env={"PYTHONTZPATH": ""})
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["occurrences"] == ["2026-03-07T02:30:00-06:00", "2026-03-08T03:00:00-05:00"]


def test_the_metadata_says_what_is_needed_and_under_which_licence():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith("psycopg") for d in meta["dependencies"])
    assert any(d.startswith("tzdata") for d in meta["dependencies"])
    assert meta["optional-dependencies"]["postgres"] == ["psycopg[binary]>=3.3"]
    assert meta["license"] == "MIT" and (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert "Operating System :: POSIX" in meta["classifiers"]  # it imports pwd

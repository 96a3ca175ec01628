"""The console: the ERP's batch forms in the terminal. The only package that imports Textual."""

from __future__ import annotations


def run_console(db_url: str | None = None, demo: bool = False, server: bool = True, guide: bool = False) -> int:
    from .app import run_console as _run

    return _run(db_url=db_url, demo=demo, server=server, guide=guide)

"""The USMF demo: sample data (``data``) and the batch classes that stand for
USMF's batch work (``classes``).

This package's own import is light on purpose: a batch server that loads a
demo class through the ``batchtui.classes`` entry points must not pull in the
loader (and with it the database layer) just for that.
"""

from __future__ import annotations


def load_demo(reset: bool = False, now=None) -> dict:
    from .data import load_demo as _load

    return _load(reset=reset, now=now)


def describe_result(result: dict) -> str:
    from .data import describe_result as _describe

    return _describe(result)


def __getattr__(name: str):
    # COMPANIES, MARKER_JOB, is_loaded, counts ... from the loader, on demand.
    if name.startswith("__"):
        raise AttributeError(name)
    import importlib

    data = importlib.import_module(f"{__name__}.data")

    try:
        return getattr(data, name)
    except AttributeError:
        raise AttributeError(f"module 'batchtui.demo' has no attribute {name!r}") from None

"""The batch class registry: which classes a task can name, and what their parameters must be.

A task names its class in one of three ways:

- a built-in class by name (`Sleep`),
- a class that an installed package offers through the entry-point group
  `batchtui.classes` (the entry point's name is the class name),
- any importable class as `package.module:ClassName`.

The engine, the command line and the console all go through `get_class` and
`validate_params`, so a job file, the task form and the batch server agree on
what is valid. Nothing here imports Textual or Peewee.
"""

from __future__ import annotations

import copy
import difflib
import importlib
import logging
import math
import threading
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from batchtui.classes.base import (
    PARAM_TYPES,
    REQUIRED,
    BatchClass,
    BatchClassError,
    CancelFlag,
    ClassNotFound,
    Param,
    ParamError,
    TaskCanceled,
    TaskContext,
)
from batchtui.classes.builtin import Fail, Flaky, Noop, Sleep
from batchtui.classes.shell import ShellCommand

__all__ = [
    "REQUIRED",
    "PARAM_TYPES",
    "ENTRY_POINT_GROUP",
    "BUILTIN_CLASSES",
    "Param",
    "BatchClass",
    "TaskContext",
    "CancelFlag",
    "BatchClassError",
    "TaskCanceled",
    "ClassNotFound",
    "ParamError",
    "get_class",
    "list_classes",
    "validate_params",
    "describe_class",
    "register_class",
    "unregister_class",
    "clear_cache",
    "Noop",
    "Sleep",
    "Fail",
    "Flaky",
    "ShellCommand",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "batchtui.classes"

BUILTIN_CLASSES: dict[str, type[BatchClass]] = {
    cls.name: cls for cls in (Noop, Sleep, Fail, Flaky, ShellCommand)
}

_registered: dict[str, type[BatchClass]] = {}
_cache: dict[str, type[BatchClass]] = {}
_lock = threading.Lock()


# --------------------------------------------------------------------------- lookup


def _is_batch_class(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, BatchClass) and obj is not BatchClass


def _entry_points(name: str | None = None):
    try:
        if name is None:
            return list(entry_points(group=ENTRY_POINT_GROUP))
        return list(entry_points(group=ENTRY_POINT_GROUP, name=name))
    except Exception:  # a broken distribution's metadata must not stop the server
        log.exception("reading the %r entry points failed", ENTRY_POINT_GROUP)
        return []


def _known_names() -> list[str]:
    names = set(BUILTIN_CLASSES) | set(_registered) | {ep.name for ep in _entry_points()}
    return sorted(names)


def _load_entry_point(ep) -> type[BatchClass]:
    try:
        obj = ep.load()
    # Loading runs the plugin's own code: any failure means "cannot be loaded".
    except Exception as exc:  # noqa: BLE001
        raise ClassNotFound(
            f"unknown class {ep.name!r}: its entry point {ep.value!r} cannot be loaded: "
            f"{type(exc).__name__}: {exc}",
            ep.name,
        ) from None
    if not _is_batch_class(obj):
        raise ClassNotFound(
            f"unknown class {ep.name!r}: its entry point {ep.value!r} is not a batch class "
            f"(a subclass of batchtui.classes.BatchClass)",
            ep.name,
        )
    return obj


def _valid_dotted(text: str) -> bool:
    return bool(text) and all(part.isidentifier() for part in text.split("."))


def _import_class(spec: str) -> type[BatchClass]:
    module_name, _, attr_path = spec.partition(":")
    if not _valid_dotted(module_name) or not _valid_dotted(attr_path):
        raise ClassNotFound(
            f"unknown class {spec!r}: name a user class as 'package.module:ClassName'", spec
        )
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        if module_name == missing or module_name.startswith(missing + "."):
            reason = f"no module named {missing!r}"
        else:
            reason = f"importing {module_name!r} failed: {exc}"
        raise ClassNotFound(f"unknown class {spec!r}: {reason}", spec) from None
    # Importing runs the user's module: whatever it raises is reported, not raised.
    except (Exception, SystemExit) as exc:  # noqa: BLE001
        raise ClassNotFound(
            f"unknown class {spec!r}: importing {module_name!r} failed: {type(exc).__name__}: {exc}",
            spec,
        ) from None
    obj: Any = module
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ClassNotFound(
                f"unknown class {spec!r}: module {module_name!r} has no {attr_path!r}", spec
            ) from None
    if not _is_batch_class(obj):
        raise ClassNotFound(
            f"unknown class {spec!r}: {attr_path!r} is not a batch class "
            f"(a subclass of batchtui.classes.BatchClass)",
            spec,
        )
    return obj


def _resolve(name: str) -> type[BatchClass]:
    if name in BUILTIN_CLASSES:
        return BUILTIN_CLASSES[name]
    with _lock:
        registered = _registered.get(name)
    if registered is not None:
        return registered
    if ":" in name:
        return _import_class(name)
    eps = _entry_points(name)
    if eps:
        return _load_entry_point(eps[0])
    known = _known_names()
    hint = ""
    folded = [k for k in known if k.lower() == name.lower()]
    close = folded or difflib.get_close_matches(name, known, n=1)
    if close:
        hint = f"did you mean {close[0]!r}? "
    raise ClassNotFound(
        f"unknown class {name!r} ({hint}available: {', '.join(known)}; "
        f"or name a user class as 'package.module:ClassName')",
        name,
    )


def get_class(name: str) -> type[BatchClass]:
    """The class a task names; `ClassNotFound` says why there is none."""
    if not isinstance(name, str) or not name.strip():
        raise ClassNotFound(
            f"unknown class {name!r}: a task needs a class name "
            f"(available: {', '.join(_known_names())})",
            None,
        )
    with _lock:
        cached = _cache.get(name)
    if cached is not None:
        return cached
    # Resolved outside the lock: an import may itself look classes up.
    cls = _resolve(name)
    with _lock:
        _cache[name] = cls
    return cls


def list_classes() -> list[type[BatchClass]]:
    """Built-in, registered and entry-point classes, sorted by name.

    An entry point that cannot be loaded is left out (and logged): one broken
    package must not hide every other class.
    """
    found: dict[str, type[BatchClass]] = dict(BUILTIN_CLASSES)
    with _lock:
        for name, cls in _registered.items():
            found.setdefault(name, cls)
    for ep in _entry_points():
        if ep.name in found:
            continue
        try:
            found[ep.name] = get_class(ep.name)
        except ClassNotFound as exc:
            log.warning("%s", exc)
    return [found[name] for name in sorted(found, key=lambda n: (n.lower(), n))]


def register_class(cls: type[BatchClass], name: str | None = None) -> type[BatchClass]:
    """Make a class known by name in this process (the demo classes, tests).

    Returns the class, so it can be used as a decorator. Built-in names cannot
    be taken over.
    """
    if not _is_batch_class(cls):
        raise TypeError(f"{cls!r} is not a subclass of BatchClass")
    key = name or cls.name
    if key in BUILTIN_CLASSES and BUILTIN_CLASSES[key] is not cls:
        raise ValueError(f"{key!r} is a built-in batch class")
    with _lock:
        _registered[key] = cls
        _cache.pop(key, None)
    return cls


def unregister_class(name: str) -> None:
    """Forget a class registered by name in this process (register_class); built-ins stay."""
    with _lock:
        _registered.pop(name, None)
        _cache.pop(name, None)


def clear_cache() -> None:
    """Forget resolved names, e.g. after installing a package with new entry points."""
    with _lock:
        _cache.clear()


# --------------------------------------------------------------------------- parameters


def _shown(value: Any) -> str:
    """A value as a job file writes it, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return f"the text {value[:60]!r}" + ("..." if len(value) > 60 else "")
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


_TYPE_WORDS = {
    "number": "a number",
    "integer": "a whole number",
    "text": "a text",
    "boolean": "true or false",
    "text_or_list": "a text or a list of texts",
}


class _Bad:
    """Builds the ParamError for one parameter of one class."""

    def __init__(self, cname: str, p: Param, value: Any):
        self.cname, self.p = cname, p
        self.wrong = self(f"must be {_TYPE_WORDS[p.type]}, not {_shown(value)}")

    def __call__(self, why: str) -> ParamError:
        return ParamError(f"{self.cname}: parameter {self.p.name!r} {why}", self.p.name, self.cname)


def _check_number(p: Param, value: Any, bad: _Bad) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad.wrong
    if p.type == "integer" and not isinstance(value, int):
        raise bad.wrong
    if isinstance(value, float) and not math.isfinite(value):
        raise bad(f"must be a finite number, not {value!r}")
    if p.minimum is not None:
        if p.exclusive_minimum and not value > p.minimum:
            raise bad(f"must be more than {p.minimum:g}, not {value!r}")
        if not p.exclusive_minimum and value < p.minimum:
            raise bad(f"must be at least {p.minimum:g}, not {value!r}")
    return value


def _check_text(p: Param, value: Any, bad: _Bad) -> Any:
    if not isinstance(value, str):
        raise bad.wrong
    return value


def _check_boolean(p: Param, value: Any, bad: _Bad) -> Any:
    if not isinstance(value, bool):
        raise bad.wrong
    return value


def _check_text_or_list(p: Param, value: Any, bad: _Bad) -> Any:
    """A command: a text (for a shell), or a list of a program and its arguments.

    Refused here, not when it runs: what no program can be (an empty text, an
    empty first item) and what no operating system passes on (NUL).
    """
    if isinstance(value, str):
        if not value.strip():
            raise bad("must not be empty")
        if "\x00" in value:
            raise bad("must not hold a NUL character (\\x00)")
        return value
    if isinstance(value, (list, tuple)):
        if not value:
            raise bad("must not be an empty list")
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise bad(f"must be a list of texts, but holds {_shown(item)}")
            if "\x00" in item:
                raise bad(f"must not hold a NUL character (\\x00), but item {i + 1} does")
        if not value[0].strip():
            raise bad("must name a program first, but its first item is empty")
        return list(value)
    raise bad.wrong


_CHECKS: dict[str, Callable[[Param, Any, _Bad], Any]] = {
    "number": _check_number,
    "integer": _check_number,
    "text": _check_text,
    "boolean": _check_boolean,
    "text_or_list": _check_text_or_list,
}


def _check_value(cname: str, p: Param, value: Any) -> Any:
    if value is None and p.default is None:
        return None  # "not set", as the default says
    check = _CHECKS.get(p.type)
    if check is None:  # pragma: no cover - Param refuses it
        raise ParamError(f"{cname}: parameter {p.name!r} has an unknown type {p.type!r}", p.name, cname)
    return check(p, value, _Bad(cname, p, value))


def validate_params(cls: type[BatchClass], params: dict | None) -> dict:
    """The task's parameters checked against its class, defaults filled in: a new dict."""
    cname = cls.name
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ParamError(
            f"{cname}: parameters must be an object of name: value, not {_shown(params)}",
            None,
            cname,
        )
    declared = {p.name: p for p in cls.params}
    for key in params:
        if key not in declared:
            takes = (
                f"its parameters: {', '.join(declared)}" if declared else "it takes no parameters"
            )
            raise ParamError(
                f"{cname}: unknown parameter {key!r} ({takes})",
                key if isinstance(key, str) else str(key),
                cname,
            )
    result: dict[str, Any] = {}
    for p in cls.params:
        if p.name in params:
            result[p.name] = _check_value(cname, p, params[p.name])
        elif p.required:
            what = f": {p.help}" if p.help else ""
            raise ParamError(f"{cname}: missing required parameter {p.name!r}{what}", p.name, cname)
        else:
            result[p.name] = copy.deepcopy(p.default)
    return result


def describe_class(cls: type[BatchClass]) -> dict:
    """The class as `batchtui classes --json` shows it."""
    return {
        "name": cls.name,
        "description": cls.description,
        "params": [
            {
                "name": p.name,
                "type": p.type,
                "default": None if p.required else copy.deepcopy(p.default),
                "required": p.required,
                "help": p.help,
            }
            for p in cls.params
        ],
    }

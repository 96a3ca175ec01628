"""The batch class registry, parameter validation and the built-in classes.

ShellCommand tests start real processes: no mock of subprocess anywhere.
The tests that switch users need root; they are skipped, saying so, otherwise.
"""

from __future__ import annotations

import json
import os
import pwd
import random
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import pytest

from batchtui.classes import (
    REQUIRED,
    BatchClass,
    BatchClassError,
    CancelFlag,
    ClassNotFound,
    Fail,
    Flaky,
    Noop,
    Param,
    ParamError,
    ShellCommand,
    Sleep,
    TaskCanceled,
    TaskContext,
    clear_cache,
    describe_class,
    get_class,
    list_classes,
    register_class,
    unregister_class,
    validate_params,
)
from batchtui.errors import UserError

ME = pwd.getpwuid(os.geteuid()).pw_name
IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="switching to another user needs a root test run")


# --------------------------------------------------------------------------- classes for the registry tests


class EchoParams(BatchClass):
    """Logs its parameters."""

    params = (
        Param("text", "text", REQUIRED, "what to log"),
        Param("flag", "boolean", False, "a switch"),
        Param("count", "integer", 2, "how many times", minimum=1),
    )

    def run(self, ctx: TaskContext) -> None:
        for _ in range(ctx.params["count"]):
            ctx.log(f"{ctx.params['text']} flag={ctx.params['flag']}")


class NotABatchClass:
    def run(self, ctx):  # pragma: no cover - never run
        pass


def helper_function():  # pragma: no cover - never run
    pass


# --------------------------------------------------------------------------- helpers


def make_ctx(cls=ShellCommand, params=None, *, run_by=ME, attempt=1, cancel_event=None, sink=None,
             process_sink=None):
    return TaskContext(
        params=validate_params(cls, params),
        company="DAT",
        job_id=1,
        task_id=2,
        run_id=3,
        attempt=attempt,
        run_by=run_by,
        server="TEST",
        cancel_event=cancel_event,
        log_sink=sink,
        process_sink=process_sink,
    )


def run_class(cls, ctx):
    """Run and return the exception raised, or None when the task ended."""
    try:
        cls().run(ctx)
    except Exception as exc:  # noqa: BLE001 - the test looks at it
        return exc
    return None


def shell(params, **kw):
    ctx = make_ctx(ShellCommand, params, **kw)
    return ctx, run_class(ShellCommand, ctx)


def output(ctx):
    """The command's output: the log without the "$ command" header line."""
    assert ctx.lines[0].startswith("$ ")
    return ctx.lines[1:]


def proc_state(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()
    return fields[0].decode(), int(fields[1]), int(fields[2])  # state, ppid, pgrp


def alive(pid):
    st = proc_state(pid)
    return st is not None and st[0] not in ("Z", "X")


def group_members(pgid):
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = proc_state(int(entry))
            if st and st[2] == pgid and st[0] not in ("Z", "X"):
                members.append(int(entry))
    return members


def my_children_running(argv):
    """Pids of this process's children whose command line is exactly `argv`."""
    wanted = ("\0".join(argv) + "\0").encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        st = proc_state(int(entry))
        if not st or st[1] != os.getpid() or st[0] in ("Z", "X"):
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if f.read() == wanted:
                    found.append(int(entry))
        except FileNotFoundError:
            pass
    return found


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    return predicate()


class Background:
    """Runs a class in a thread, as the engine's worker does."""

    def __init__(self, cls, ctx):
        self.cls, self.ctx = cls, ctx
        self.exc = None
        self.ended_at = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.exc = run_class(self.cls, self.ctx)
        self.ended_at = time.monotonic()

    def join(self, timeout=10):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the class did not return"


# --------------------------------------------------------------------------- registry


def test_builtins_by_name_and_cached():
    for name, cls in [("Noop", Noop), ("Sleep", Sleep), ("Fail", Fail), ("Flaky", Flaky),
                      ("ShellCommand", ShellCommand)]:
        assert get_class(name) is cls
        assert get_class(name) is cls


def test_module_colon_class_from_a_test_module():
    cls = get_class(f"{__name__}:EchoParams")
    assert cls is EchoParams
    assert cls.name == "EchoParams" and cls.description == "Logs its parameters."
    assert get_class(f"{__name__}:EchoParams") is cls
    ctx = make_ctx(cls, {"text": "hi"})
    assert run_class(cls, ctx) is None
    assert ctx.lines == ["hi flag=False", "hi flag=False"]


@pytest.mark.parametrize(
    "name, fragment",
    [
        (f"{__name__}:NotABatchClass", "is not a batch class"),
        (f"{__name__}:helper_function", "is not a batch class"),
        ("batchtui.classes:BatchClass", "is not a batch class"),
        (f"{__name__}:NoSuchThing", "has no 'NoSuchThing'"),
        ("no_such_module_for_batchtui:Thing", "no module named 'no_such_module_for_batchtui'"),
        ("no_such_package_bt.sub:Thing", "no module named 'no_such_package_bt'"),
        ("not a module:Thing", "package.module:ClassName"),
        ("os:", "package.module:ClassName"),
        ("Nope", "available: BatchHistoryCleanup, "),
        ("Nope", "Fail, Flaky, "),
        ("", "needs a class name"),
    ],
)
def test_class_not_found(name, fragment):
    with pytest.raises(ClassNotFound) as info:
        get_class(name)
    message = str(info.value)
    assert message.startswith(f"unknown class {name!r}")
    assert fragment in message
    assert isinstance(info.value, UserError)


def test_unknown_name_says_how_to_name_a_user_class_and_suggests():
    with pytest.raises(ClassNotFound) as info:
        get_class("sleep")
    assert "did you mean 'Sleep'?" in str(info.value)
    assert "package.module:ClassName" in str(info.value)


def test_a_module_that_fails_to_import(tmp_path, monkeypatch):
    (tmp_path / "bt_broken_mod.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ClassNotFound, match="importing 'bt_broken_mod' failed: RuntimeError: boom at import"):
        get_class("bt_broken_mod:Anything")
    sys.modules.pop("bt_broken_mod", None)


@pytest.fixture
def plugin_dist(tmp_path, monkeypatch):
    """A distribution on sys.path that offers classes through the entry-point group."""
    (tmp_path / "bt_plugin_mod.py").write_text(textwrap.dedent("""
        from batchtui.classes import BatchClass, Param

        class Hello(BatchClass):
            name = "Hello"
            description = "Says hello."
            params = (Param("who", "text", "world"),)

            def run(self, ctx):
                ctx.log("hello " + ctx.params["who"])

        class NotAClass:
            pass
    """))
    info = tmp_path / "bt_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: bt-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[batchtui.classes]\nHello = bt_plugin_mod:Hello\nBroken = bt_plugin_mod:NotAClass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    clear_cache()
    yield
    clear_cache()
    sys.modules.pop("bt_plugin_mod", None)


def test_entry_point_classes(plugin_dist):
    hello = get_class("Hello")
    assert hello.__name__ == "Hello" and hello.description == "Says hello."
    ctx = make_ctx(hello, {})
    assert run_class(hello, ctx) is None
    assert ctx.lines == ["hello world"]
    names = [cls.name for cls in list_classes()]
    assert "Hello" in names and "Broken" not in names  # a broken entry point is left out
    with pytest.raises(ClassNotFound, match="entry point 'bt_plugin_mod:NotAClass' is not a batch class"):
        get_class("Broken")
    with pytest.raises(ClassNotFound) as info:
        get_class("Nope")
    assert "Hello" in str(info.value)  # the list of available names includes entry points


def test_list_classes_sorted_and_described():
    classes = list_classes()
    names = [cls.name for cls in classes]
    assert {"Noop", "Sleep", "Fail", "Flaky", "ShellCommand"} <= set(names)
    assert names == sorted(names, key=lambda n: (n.lower(), n))
    described = [describe_class(cls) for cls in classes]
    json.dumps(described)  # what `batchtui classes --json` prints
    assert describe_class(ShellCommand) == {
        "name": "ShellCommand",
        "description": ShellCommand.description,
        "params": [
            {"name": "command", "type": "text_or_list", "default": None, "required": True,
             "help": ShellCommand.params[0].help},
            {"name": "cwd", "type": "text", "default": None, "required": False,
             "help": ShellCommand.params[1].help},
            {"name": "timeout", "type": "number", "default": None, "required": False,
             "help": ShellCommand.params[2].help},
        ],
    }
    assert describe_class(Sleep)["params"][0]["default"] == 1
    assert describe_class(Noop) == {"name": "Noop", "description": "Ends at once.", "params": []}


def test_register_class():
    class Registered(BatchClass):
        name = "TestRegistered"

    register_class(Registered)
    assert get_class("TestRegistered") is Registered
    assert Registered in list_classes()
    with pytest.raises(ValueError):
        register_class(Registered, "Sleep")
    with pytest.raises(TypeError):
        register_class(NotABatchClass)  # type: ignore[arg-type]
    unregister_class("TestRegistered")
    with pytest.raises(ClassNotFound):
        get_class("TestRegistered")
    unregister_class("Sleep")  # a built-in stays
    assert get_class("Sleep").name == "Sleep"


def test_param_rejects_unknown_type():
    with pytest.raises(ValueError, match="unknown type"):
        Param("x", "float")


def test_imports_neither_textual_nor_peewee():
    code = (
        "import sys, batchtui.classes as c; c.list_classes(); "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'peewee')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------- parameters


def test_defaults_filled():
    assert validate_params(Noop, None) == {}
    assert validate_params(Noop, {}) == {}
    assert validate_params(Sleep, None) == {"seconds": 1}
    assert validate_params(Fail, {}) == {"message": "Failed on purpose"}
    assert validate_params(Flaky, {}) == {"failures": 1}
    assert validate_params(ShellCommand, {"command": "true"}) == {
        "command": "true", "cwd": None, "timeout": None}
    assert validate_params(EchoParams, {"text": "x"}) == {"text": "x", "flag": False, "count": 2}


def test_good_values_and_a_new_dict():
    assert validate_params(Sleep, {"seconds": 0}) == {"seconds": 0}
    assert validate_params(Sleep, {"seconds": 2.5}) == {"seconds": 2.5}
    assert validate_params(Flaky, {"failures": 0}) == {"failures": 0}
    assert validate_params(EchoParams, {"text": "", "flag": True, "count": 1})["flag"] is True
    given = {"command": ["ls", "-l"], "cwd": None, "timeout": 0.5}
    checked = validate_params(ShellCommand, given)
    assert checked == given and checked is not given
    assert checked["command"] is not given["command"]  # the list is copied too
    checked["command"].append("x")
    assert given["command"] == ["ls", "-l"]
    assert json.loads(json.dumps(checked)) == checked


@pytest.mark.parametrize(
    "cls, params, param, fragment",
    [
        (Sleep, {"secs": 1}, "secs", "unknown parameter 'secs' (its parameters: seconds)"),
        (Noop, {"x": 1}, "x", "unknown parameter 'x' (it takes no parameters)"),
        (Sleep, {"seconds": True}, "seconds", "must be a number, not true"),
        (Sleep, {"seconds": False}, "seconds", "must be a number, not false"),
        (Sleep, {"seconds": "5"}, "seconds", "must be a number, not the text '5'"),
        (Sleep, {"seconds": None}, "seconds", "must be a number, not null"),
        (Sleep, {"seconds": [1]}, "seconds", "must be a number, not a list"),
        (Sleep, {"seconds": float("nan")}, "seconds", "must be a finite number"),
        (Sleep, {"seconds": float("inf")}, "seconds", "must be a finite number"),
        (Sleep, {"seconds": -1}, "seconds", "must be at least 0, not -1"),
        (Sleep, {"seconds": -0.5}, "seconds", "must be at least 0"),
        (Flaky, {"failures": 1.5}, "failures", "must be a whole number, not 1.5"),
        (Flaky, {"failures": 2.0}, "failures", "must be a whole number"),
        (Flaky, {"failures": True}, "failures", "must be a whole number, not true"),
        (Flaky, {"failures": -1}, "failures", "must be at least 0"),
        (Fail, {"message": 3}, "message", "must be a text, not 3"),
        (Fail, {"message": None}, "message", "must be a text, not null"),
        (EchoParams, {"text": "x", "flag": 1}, "flag", "must be true or false, not 1"),
        (EchoParams, {"text": "x", "flag": "yes"}, "flag", "must be true or false"),
        (EchoParams, {"text": "x", "count": 0}, "count", "must be at least 1"),
        (EchoParams, {}, "text", "missing required parameter 'text'"),
        (ShellCommand, {}, "command", "missing required parameter 'command'"),
        (ShellCommand, {"command": None}, "command", "must be a text or a list of texts, not null"),
        (ShellCommand, {"command": 5}, "command", "must be a text or a list of texts"),
        (ShellCommand, {"command": {"a": 1}}, "command", "not an object"),
        (ShellCommand, {"command": ["ls", 3]}, "command", "must be a list of texts, but holds 3"),
        (ShellCommand, {"command": []}, "command", "must not be an empty list"),
        (ShellCommand, {"command": "  "}, "command", "must not be empty"),
        (ShellCommand, {"command": "ls", "timeout": 0}, "timeout", "must be more than 0, not 0"),
        (ShellCommand, {"command": "ls", "timeout": -3}, "timeout", "must be more than 0"),
        (ShellCommand, {"command": "ls", "timeout": True}, "timeout", "must be a number"),
        (ShellCommand, {"command": "ls", "cwd": 5}, "cwd", "must be a text, not 5"),
        (ShellCommand, {"command": "ls", "shell": True}, "shell", "unknown parameter 'shell'"),
    ],
)
def test_bad_params(cls, params, param, fragment):
    with pytest.raises(ParamError) as info:
        validate_params(cls, params)
    assert info.value.param == param
    assert str(info.value).startswith(f"{cls.name}: ")
    assert fragment in str(info.value)
    assert isinstance(info.value, UserError)


def test_params_must_be_an_object():
    with pytest.raises(ParamError, match="Sleep: parameters must be an object") as info:
        validate_params(Sleep, [1])  # type: ignore[arg-type]
    assert info.value.param is None


# --------------------------------------------------------------------------- TaskContext and the small classes


def test_task_context_log_progress_wait():
    sunk, progressed = [], []
    ctx = TaskContext(params={}, company="DAT", job_id=1, task_id=2, run_id=3, attempt=1,
                      run_by=ME, server="TEST", log_sink=sunk.append,
                      progress_sink=lambda f, t: progressed.append((f, t)))
    ctx.log("one")
    ctx.log("two\nthree")
    assert ctx.lines == sunk == ["one", "two", "three"]
    ctx.progress(0.5, "half")
    ctx.progress(7)
    assert progressed == [(0.5, "half"), (1.0, None)]
    assert not ctx.canceled
    started = time.monotonic()
    assert ctx.wait(0.05) is False
    assert time.monotonic() - started >= 0.04
    ctx.cancel_event.set()
    assert ctx.canceled and ctx.wait(10) is True
    with pytest.raises(TaskCanceled):
        ctx.check_canceled()


def test_the_cancel_flag_wakes_every_waiter_whenever_it_is_set():
    """CancelFlag (a server's per-attempt flag) makes its Event only when waited on: a set that
    races with the first wait must never be lost, whichever comes first."""
    rng = random.Random(17)
    for _ in range(200):
        flag = CancelFlag()
        woke: list[bool] = []
        waiters = [threading.Thread(target=lambda f=flag, w=woke: w.append(f.wait(5))) for _ in range(3)]
        for t in waiters:
            t.start()
        time.sleep(rng.choice([0, 0, 0.0005]))
        flag.set()
        for t in waiters:
            t.join(2)
        assert not any(t.is_alive() for t in waiters), "a waiter missed the set"
        assert woke == [True, True, True] and flag.is_set()
    assert CancelFlag().wait(0.01) is False


def test_noop_ends():
    ctx = make_ctx(Noop)
    assert run_class(Noop, ctx) is None


def test_sleep_waits_and_reports_progress():
    progressed = []
    ctx = make_ctx(Sleep, {"seconds": 0.2})
    ctx.progress_sink = lambda f, t: progressed.append(f)
    started = time.monotonic()
    assert run_class(Sleep, ctx) is None
    assert 0.18 <= time.monotonic() - started < 1.0
    assert progressed and progressed[-1] == 1.0


def test_sleep_canceled_returns_quickly():
    ctx = make_ctx(Sleep, {"seconds": 30})
    bg = Background(Sleep, ctx)
    time.sleep(0.1)
    canceled_at = time.monotonic()
    ctx.cancel_event.set()
    bg.join(5)
    assert isinstance(bg.exc, TaskCanceled)
    assert bg.ended_at - canceled_at < 0.2


def test_sleep_already_canceled():
    ctx = make_ctx(Sleep, {"seconds": 30})
    ctx.cancel_event.set()
    started = time.monotonic()
    assert isinstance(run_class(Sleep, ctx), TaskCanceled)
    assert time.monotonic() - started < 0.1


def test_fail_fails_with_its_message():
    exc = run_class(Fail, make_ctx(Fail))
    assert isinstance(exc, BatchClassError) and str(exc) == "Failed on purpose"
    exc = run_class(Fail, make_ctx(Fail, {"message": "Ledger is closed"}))
    assert isinstance(exc, BatchClassError) and str(exc) == "Ledger is closed"


def test_flaky_fails_its_first_attempts_then_ends():
    for attempt in (1, 2):
        ctx = make_ctx(Flaky, {"failures": 2}, attempt=attempt)
        exc = run_class(Flaky, ctx)
        assert isinstance(exc, BatchClassError)
        assert f"attempt {attempt}" in str(exc)
        assert any(f"attempt {attempt} fails" in line for line in ctx.lines)
    ctx = make_ctx(Flaky, {"failures": 2}, attempt=3)
    assert run_class(Flaky, ctx) is None
    assert run_class(Flaky, make_ctx(Flaky, {"failures": 0}, attempt=1)) is None
    assert isinstance(run_class(Flaky, make_ctx(Flaky, {}, attempt=1)), BatchClassError)
    assert run_class(Flaky, make_ctx(Flaky, {}, attempt=2)) is None


# --------------------------------------------------------------------------- ShellCommand


def test_shell_text_form_output_in_order():
    ctx, exc = shell({"command": "echo one; echo two >&2; echo three; printf 'no newline'"})
    assert exc is None
    assert output(ctx) == ["one", "two", "three", "no newline"]
    assert ctx.lines[0].startswith("$ echo one;") and f"as {ME}" in ctx.lines[0]


def test_shell_many_lines_in_order_and_to_the_sink():
    sunk = []
    ctx, exc = shell({"command": "i=0; while [ $i -lt 500 ]; do echo out $i; echo err $i >&2; i=$((i+1)); done"},
                     sink=sunk.append)
    assert exc is None
    expected = [f"{kind} {i}" for i in range(500) for kind in ("out", "err")]
    assert output(ctx) == expected
    assert sunk == ctx.lines


def test_shell_list_form_runs_without_a_shell():
    ctx, exc = shell({"command": ["printf", "%s\\n", "a b", "$HOME", "; echo injected", "*"]})
    assert exc is None
    assert output(ctx) == ["a b", "$HOME", "; echo injected", "*"]


def test_shell_output_streams_while_the_command_runs():
    times = {}

    def sink(line):
        times.setdefault(line, time.monotonic())

    started = time.monotonic()
    ctx, exc = shell({"command": "echo first; sleep 0.8; echo second"}, sink=sink)
    assert exc is None
    assert times["first"] - started < 0.5
    assert times["second"] - times["first"] >= 0.6


def test_shell_decodes_utf8_with_replacement():
    ctx, exc = shell({"command": "printf 'caf\\303\\251\\n\\377ok\\n'"})
    assert exc is None
    assert output(ctx) == ["café", "\ufffdok"]


def test_shell_exit_status_fails():
    ctx, exc = shell({"command": "echo before; exit 3"})
    assert isinstance(exc, BatchClassError)
    assert str(exc) == "command exited with status 3"
    assert output(ctx) == ["before"]
    ctx, exc = shell({"command": ["false"]})
    assert str(exc) == "command exited with status 1"


def test_shell_killed_by_signal_names_it():
    ctx, exc = shell({"command": ["sh", "-c", "kill -KILL $$"]})
    assert isinstance(exc, BatchClassError)
    assert "killed by signal SIGKILL" in str(exc)


def test_shell_not_found_in_text_form():
    ctx, exc = shell({"command": "no-such-program-for-batchtui"})
    assert isinstance(exc, BatchClassError)
    assert str(exc).startswith("command exited with status 127")
    assert any("no-such-program-for-batchtui" in line for line in output(ctx))


def test_shell_cannot_start():
    ctx, exc = shell({"command": ["/no/such/program"]})
    assert isinstance(exc, BatchClassError)
    assert "cannot start '/no/such/program'" in str(exc)
    ctx, exc = shell({"command": "true", "cwd": "/no/such/folder"})
    assert isinstance(exc, BatchClassError)
    assert "'/no/such/folder'" in str(exc) and "working folder" in str(exc)


def test_shell_cwd_default_and_explicit(tmp_path):
    home = pwd.getpwnam(ME).pw_dir
    expected = home if os.path.isdir(home) else "/"
    ctx, exc = shell({"command": "pwd"})
    assert exc is None
    assert output(ctx) == [os.path.realpath(expected)]
    ctx, exc = shell({"command": ["pwd"], "cwd": str(tmp_path)})
    assert exc is None
    assert output(ctx) == [os.path.realpath(tmp_path)]


def test_shell_environment_is_minimal(monkeypatch):
    monkeypatch.setenv("BATCHTUI_SECRET", "hunter2")
    monkeypatch.setenv("LANG", "C.UTF-8")
    ctx, exc = shell({"command": ["env"]})
    assert exc is None
    env = dict(line.split("=", 1) for line in output(ctx))
    pw = pwd.getpwnam(ME)
    assert env.pop("HOME") == pw.pw_dir
    assert env.pop("USER") == ME and env.pop("LOGNAME") == ME
    assert env.pop("SHELL") == (pw.pw_shell or "/bin/sh")
    assert env.pop("PATH") == "/usr/local/bin:/usr/bin:/bin"
    assert env.pop("LANG") == "C.UTF-8"
    assert {k: v for k, v in env.items() if k.startswith("BATCHTUI_")} == {
        "BATCHTUI_JOB_ID": "1", "BATCHTUI_TASK_ID": "2", "BATCHTUI_RUN_ID": "3",
        "BATCHTUI_ATTEMPT": "1", "BATCHTUI_COMPANY": "DAT", "BATCHTUI_SERVER": "TEST"}
    assert not any("hunter2" in line for line in ctx.lines)


def _cancel_when_pid_printed(params, cls=ShellCommand):
    """Start `params`, whose command prints its shell's pid first; return (bg, pgid)."""
    printed = threading.Event()

    def sink(line):
        if line.strip().isdigit():
            printed.set()

    ctx = make_ctx(cls, params, cancel_event=threading.Event(), sink=sink)
    bg = Background(cls, ctx)
    assert printed.wait(5), ctx.lines
    pgid = int(next(line for line in ctx.lines if line.strip().isdigit()))
    return bg, ctx, pgid


def test_shell_cancel_kills_the_process_group_quickly():
    bg, ctx, pgid = _cancel_when_pid_printed({"command": "echo $$; sleep 31; echo after"})
    assert proc_state(pgid)[2] == pgid  # the shell leads its own process group
    members = wait_for(lambda: group_members(pgid) if len(group_members(pgid)) >= 2 else None)
    assert members and len(members) >= 2, "the shell and its sleep child"
    canceled_at = time.monotonic()
    ctx.cancel_event.set()
    bg.join(10)
    assert isinstance(bg.exc, TaskCanceled), ctx.lines
    assert bg.ended_at - canceled_at < 1.0
    for pid in members:
        assert not alive(pid), f"process {pid} of the canceled command still runs: {proc_state(pid)}"
    assert "after" not in ctx.lines


def test_shell_cancel_of_a_plain_list_command():
    ctx = make_ctx(ShellCommand, {"command": ["sleep", "32"]}, cancel_event=threading.Event())
    bg = Background(ShellCommand, ctx)
    pids = wait_for(lambda: my_children_running(["sleep", "32"]))
    assert len(pids) == 1
    time.sleep(0.2)  # the command prints nothing: cancel must still be seen
    canceled_at = time.monotonic()
    ctx.cancel_event.set()
    bg.join(10)
    assert isinstance(bg.exc, TaskCanceled)
    assert bg.ended_at - canceled_at < 0.5
    assert not alive(pids[0])


class QuickKill(ShellCommand):
    name = "QuickKill"
    term_grace_seconds = 0.5


def test_shell_cancel_escalates_to_sigkill():
    # Ignored SIGTERM is inherited by the sleep too: only SIGKILL stops them.
    bg, ctx, pgid = _cancel_when_pid_printed(
        {"command": "trap '' TERM; echo $$; sleep 33; echo after"}, cls=QuickKill)
    members = wait_for(lambda: group_members(pgid) if len(group_members(pgid)) >= 2 else None)
    canceled_at = time.monotonic()
    ctx.cancel_event.set()
    bg.join(10)
    assert isinstance(bg.exc, TaskCanceled)
    assert 0.4 <= bg.ended_at - canceled_at < 2.5
    for pid in members:
        assert not alive(pid), f"process {pid} of the canceled command still runs: {proc_state(pid)}"


def test_shell_canceled_before_start_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    ctx = make_ctx(ShellCommand, {"command": f"touch {marker}"}, cancel_event=threading.Event())
    ctx.cancel_event.set()
    assert isinstance(run_class(ShellCommand, ctx), TaskCanceled)
    assert not marker.exists()


def test_shell_timeout():
    started = time.monotonic()
    ctx, exc = shell({"command": "echo $$; sleep 34", "timeout": 0.3})
    elapsed = time.monotonic() - started
    assert isinstance(exc, BatchClassError)
    assert str(exc) == "timed out after 0.3 s"
    assert 0.25 <= elapsed < 1.5
    pgid = int(output(ctx)[0])
    assert not group_members(pgid)


def test_shell_leftover_background_processes_are_stopped():
    started = time.monotonic()
    ctx, exc = shell({"command": "sleep 35 & echo $!"})
    assert exc is None
    assert time.monotonic() - started < 2.0
    child = int(output(ctx)[0])
    assert not alive(child)
    assert any("left processes running" in line for line in ctx.lines)


def test_shell_unknown_user_refused():
    ctx, exc = shell({"command": "true"}, run_by="no-such-user-for-batchtui")
    assert isinstance(exc, BatchClassError)
    assert str(exc).startswith("refused: the Run-by user 'no-such-user-for-batchtui' has no account")
    ctx, exc = shell({"command": "true"}, run_by="")
    assert isinstance(exc, BatchClassError) and str(exc).startswith("refused")


@needs_root
def test_shell_as_root_switches_to_the_run_by_user(monkeypatch):
    monkeypatch.setenv("BATCHTUI_SECRET", "hunter2")
    nobody = pwd.getpwnam("nobody")
    ctx, exc = shell(
        {"command": "id -un; id -u; id -G; echo HOME=$HOME; echo SECRET=${BATCHTUI_SECRET-unset}; pwd"},
        run_by="nobody",
    )
    assert exc is None, ctx.lines
    expected_cwd = nobody.pw_dir if os.path.isdir(nobody.pw_dir) else "/"
    lines = output(ctx)
    assert lines[:2] == ["nobody", str(nobody.pw_uid)]
    assert {int(g) for g in lines[2].split()} == set(os.getgrouplist("nobody", nobody.pw_gid))
    assert 0 not in {int(g) for g in lines[2].split()}  # none of root's groups kept
    assert lines[3:] == [f"HOME={nobody.pw_dir}", "SECRET=unset", expected_cwd]
    assert not any("hunter2" in line for line in ctx.lines)


@needs_root
def test_shell_as_root_user_cannot_read_roots_files(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("top secret\n")
    secret.chmod(0o600)
    ctx, exc = shell({"command": ["cat", str(secret)]}, run_by="nobody")
    assert isinstance(exc, BatchClassError)
    assert "top secret" not in "\n".join(ctx.lines)


@needs_root
def test_shell_as_root_refuses_a_folder_the_user_may_not_enter():
    # Not under tmp_path: pytest's base folder is root-only, and nobody must reach this one.
    with tempfile.TemporaryDirectory(prefix="batchtui-cwd-", dir="/tmp") as folder:
        os.chmod(folder, 0o700)
        marker = os.path.join(folder, "ran")
        ctx, exc = shell({"command": f"touch {marker}", "cwd": folder}, run_by="nobody")
        assert isinstance(exc, BatchClassError)
        assert str(exc) == f"cannot start the command: working folder {folder!r}: 'nobody' may not enter it"
        assert not os.path.exists(marker)
        # The same folder opened up is fine.
        os.chmod(folder, 0o755)
        ctx, exc = shell({"command": "pwd", "cwd": folder}, run_by="nobody")
        assert exc is None, (exc, ctx.lines)
        assert output(ctx) == [folder]


@pytest.mark.skipif(IS_ROOT, reason="runs as this non-root user; the root run covers it with setpriv")
def test_shell_non_root_refuses_another_user():
    ctx, exc = shell({"command": "true"}, run_by="root")
    assert isinstance(exc, BatchClassError)
    assert str(exc) == (f"refused: this batch server runs as {ME!r} and cannot run a shell task "
                        f"as 'root' (run the server as root or as 'root')")


NON_ROOT_SCRIPT = textwrap.dedent("""
    import json, os
    from batchtui.classes import ShellCommand, TaskContext, BatchClassError, validate_params

    def attempt(run_by):
        ctx = TaskContext(params=validate_params(ShellCommand, {"command": "id -un"}),
                          company="DAT", job_id=1, task_id=2, run_id=3, attempt=1,
                          run_by=run_by, server="TEST")
        try:
            ShellCommand().run(ctx)
        except BatchClassError as exc:
            return {"error": str(exc), "lines": ctx.lines}
        return {"error": None, "lines": ctx.lines}

    print(json.dumps({"euid": os.geteuid(), "root": attempt("root"), "nobody": attempt("nobody")}))
""")


@needs_root
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is not installed")
def test_shell_server_running_as_nobody_refuses_other_users():
    nobody = pwd.getpwnam("nobody")

    def as_nobody(code):
        return subprocess.run(
            ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups",
             sys.executable, "-c", code],
            capture_output=True, text=True, cwd="/", timeout=60,
            env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/"},
        )

    probe = as_nobody("import batchtui.classes")
    if probe.returncode != 0:
        pytest.skip(f"this Python or the package cannot be used as nobody: {probe.stderr.strip()[-300:]}")
    result = as_nobody(NON_ROOT_SCRIPT)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["euid"] == nobody.pw_uid
    assert report["root"]["error"] == (
        "refused: this batch server runs as 'nobody' and cannot run a shell task as 'root' "
        "(run the server as root or as 'root')"
    )
    assert report["root"]["lines"] == []  # nothing ran
    assert report["nobody"]["error"] is None
    assert report["nobody"]["lines"][1:] == ["nobody"]


# --------------------------------------------------------------------------- no task twice at once (issue #16)


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2:].split()[0] not in (b"Z", b"X")


def test_shell_command_starts_only_once_its_process_group_is_recorded(tmp_path):
    marker = tmp_path / "ran"
    seen: dict = {}

    def recorded_later(pgid):
        seen["pgid"] = pgid
        seen["ran before"] = marker.exists()
        time.sleep(0.3)  # as if the database were slow
        seen["ran meanwhile"] = marker.exists()
        done = threading.Event()
        done.set()
        return done

    ctx = make_ctx(params={"command": f"echo $$; touch {marker}"}, process_sink=recorded_later)
    assert run_class(ShellCommand, ctx) is None, ctx.lines
    assert marker.exists()
    # The group reported is the command's own (its shell leads it).
    assert seen == {"pgid": int(output(ctx)[0]), "ran before": False, "ran meanwhile": False}


def test_shell_command_canceled_before_its_group_is_recorded_never_runs(tmp_path):
    marker = tmp_path / "ran"
    cancel = threading.Event()
    pids = []

    def never_recorded(pgid):
        pids.append(pgid)
        threading.Timer(0.2, cancel.set).start()
        return threading.Event()

    ctx = make_ctx(params={"command": f"touch {marker}"}, cancel_event=cancel, process_sink=never_recorded)
    exc = run_class(ShellCommand, ctx)
    assert isinstance(exc, TaskCanceled), (exc, ctx.lines)
    assert not marker.exists()
    assert len(pids) == 1 and not _running(pids[0])


SERVER_SCRIPT = textwrap.dedent("""
    import sys
    from batchtui.classes import ShellCommand, TaskContext, validate_params

    ctx = TaskContext(params=validate_params(ShellCommand, {"command": sys.argv[1]}), company="DAT", job_id=1,
                      task_id=2, run_id=3, attempt=1, run_by=sys.argv[2], server="TEST")
    ShellCommand().run(ctx)
""")


def test_shell_command_dies_with_the_server_that_started_it():
    """Item 5: the kernel kills the command when its server dies (the parent-death signal),
    also after the switch to another Run-by user (which would clear a signal set before it)."""
    run_by = "nobody" if IS_ROOT else ME
    folder = tempfile.mkdtemp(prefix="batchtui-pdeath-", dir="/tmp")
    os.chmod(folder, 0o777)
    out = os.path.join(folder, "pid")
    env = dict(os.environ, PYTHONPATH=str(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    server = subprocess.Popen([sys.executable, "-c", SERVER_SCRIPT,
                               f"echo $$ > {out}.tmp && mv {out}.tmp {out}; while :; do sleep 0.1; done", run_by],
                              env=env, cwd="/")
    pid = None
    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(out):
            assert time.monotonic() < deadline and server.poll() is None, "the command did not start"
            time.sleep(0.02)
        with open(out) as f:
            pid = int(f.read())
        assert _running(pid)
        if IS_ROOT:
            assert os.stat(f"/proc/{pid}").st_uid == pwd.getpwnam(run_by).pw_uid
        server.kill()
        server.wait()
        deadline = time.monotonic() + 2
        while _running(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not _running(pid), "the command outlived its server"
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        if pid is not None and _running(pid):
            os.killpg(pid, 9)
        shutil.rmtree(folder, ignore_errors=True)

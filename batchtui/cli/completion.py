"""`batchtui completion bash|zsh|fish`: a completion script made from the parser itself.

bash and zsh come from shtab, which walks argparse's tree; shtab has no fish
output, so fish's `complete` lines are made here from the same tree. Either
way a new command or option completes without anyone editing a script.
"""

from __future__ import annotations

import argparse
import shlex

from .common import EXIT_OK, PROG, emit

SHELLS = ("bash", "zsh", "fish")


def cmd_completion(args: argparse.Namespace) -> int:
    from .parser import build_parser

    parser = build_parser()
    if args.shell == "fish":
        emit(fish_script(parser))
    else:
        import shtab

        emit(shtab.complete(parser, shell=args.shell).rstrip("\n"))
    return EXIT_OK


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:  # argparse keeps its tree here; shtab reads it the same way
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            return {name: (helps.get(name, ""), sub) for name, sub in action.choices.items()}
    return {}


def fish_script(parser: argparse.ArgumentParser) -> str:
    lines = [f"# fish completion for {PROG} (batchtui completion fish)", f"complete -c {PROG} -f"]

    def walk(p: argparse.ArgumentParser, path: list[str]) -> None:
        subs = _subcommands(p)
        if path:
            cond = f"__fish_seen_subcommand_from {path[-1]}"
            if len(path) > 1:
                cond = f"__fish_seen_subcommand_from {path[0]}; and {cond}"
        else:
            cond = "__fish_use_subcommand"
        if subs:
            names = " ".join(subs)
            guard = cond if not path else f"{cond}; and not __fish_seen_subcommand_from {names}"
            for name, (help_text, _) in subs.items():
                lines.append(f"complete -c {PROG} -n {shlex.quote(guard)} -a {name} -d {shlex.quote(help_text)}")
        for action in p._actions:
            for opt in action.option_strings:
                if opt.startswith("--"):
                    line = f"complete -c {PROG} -n {shlex.quote(cond)} -l {opt[2:]}"
                    if action.help and action.help != argparse.SUPPRESS:
                        line += f" -d {shlex.quote(action.help.splitlines()[0][:80])}"
                    if action.choices and not isinstance(action, argparse._SubParsersAction):
                        line += f" -xa {shlex.quote(' '.join(map(str, action.choices)))}"
                    lines.append(line)
            if not action.option_strings and action.choices and not isinstance(action, argparse._SubParsersAction):
                lines.append(f"complete -c {PROG} -n {shlex.quote(cond)} -a "
                             f"{shlex.quote(' '.join(map(str, action.choices)))}")
        for name, (_, sub) in subs.items():
            walk(sub, [*path, name])

    walk(parser, [])
    return "\n".join(lines)

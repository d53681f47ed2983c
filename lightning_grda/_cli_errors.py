"""One-line errors for the ``lightning-grda`` command.

jsonargparse reports a bad value of a class argument (``--model.init_args.c nan``, ``--data.init_args.batch_size 0``,
a callback's argument) as "Does not validate against any of the Union subtypes", listing every subtype it tried,
with a misleading ``Expected a <class 'NoneType'>``, then 50 lines of usage; an error raised later (a dataset
not found) comes with a traceback. The command prints one line instead, naming the option as the user wrote it:

    lightning-grda: error: Invalid model.init_args.c: 'nan'; expected a finite float
    lightning-grda: error: Invalid model.init_args.cc: no such option of ImageClassifier; did you mean c?

and exits with status 2 (bad input) or 1 (any other error). The traceback is printed only on request:
``--traceback`` anywhere on the command line, or the environment variable ``LIGHTNING_GRDA_TRACEBACK=1``.

The condensing is written by hand: jsonargparse has no structured form of these errors, only the text.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import re
import sys
import traceback
from contextvars import ContextVar
from typing import Any, NoReturn

from lightning.pytorch.cli import LightningArgumentParser

__all__: list[str] = []

TRACEBACK_FLAG = "--traceback"
TRACEBACK_ENV = "LIGHTNING_GRDA_TRACEBACK"

ONE_LINE: ContextVar[bool] = ContextVar("lightning_grda_one_line_errors", default=False)
"""Set by the console script: parser errors raise :class:`CLIError` instead of printing usage and exiting."""


class CLIError(Exception):
    """A bad command line or config: printed as one line, exit status 2."""


class OneLineParser(LightningArgumentParser):
    """LightningCLI's parser; inside the console script, a top-level parse error raises :class:`CLIError`.

    jsonargparse's nested parsers (``exit_on_error=False``) raise their own errors, which it catches while trying
    the subtypes of a union; only the error that would print usage and exit is replaced.
    """

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        """Raise :class:`CLIError` in the console script; otherwise jsonargparse's own behaviour."""
        if self.exit_on_error and ONE_LINE.get():
            raise CLIError(_with_suggestions(message, self)) from ex
        super().error(message, ex)


def _option_strings(parser: Any) -> list[str]:
    """Every ``--option`` of ``parser`` and of its subcommands' parsers."""
    found: list[str] = []
    for action in getattr(parser, "_actions", []):
        found += [o for o in action.option_strings if o.startswith("--")]
        choices = getattr(action, "choices", None)
        if isinstance(choices, dict):  # the subcommands' parsers
            found += [o for sub in choices.values() if hasattr(sub, "_actions") for o in _option_strings(sub)]
    return found


def _with_suggestions(message: str, parser: Any) -> str:
    """``message``, with "did you mean" for each unrecognised ``--option`` that is close to a real one."""
    match = re.match(r"(?i)unrecognized arguments: (.*)", message.strip())
    if not match:
        return message
    known = sorted(set(_option_strings(parser)))
    parts = []
    for arg in match[1].split():
        name = arg.split("=", 1)[0]
        guess = difflib.get_close_matches(name, known, n=1, cutoff=0.8) if name.startswith("--") else []
        parts.append(f"{arg} (did you mean {guess[0]}?)" if guess else arg)
    return f"Unknown option: {' '.join(parts)}"


def refuse_random_weights(config: Any, subcommand: str | None) -> None:
    """Refuse ``validate``/``test``/``predict`` with neither ``--ckpt_path`` nor ``--init_from``: random weights.

    Raises:
        CLIError: the subcommand would evaluate the model's random initial weights.
    """
    if subcommand not in ("validate", "test", "predict"):
        return
    options = config[subcommand]
    if options.get("ckpt_path") or options.get("init_from"):
        return
    sources = "--ckpt_path PATH (a checkpoint, e.g. a fit's checkpoints/last.ckpt)"
    if "init_from" in options:  # the option exists in this version of the command
        sources += " or --init_from PATH (trained weights)"
    raise CLIError(f"lightning-grda {subcommand} would evaluate the model's random initial weights: give {sources}")


def traceback_requested(argv: list[str]) -> tuple[bool, list[str]]:
    """Whether the traceback was asked for, and ``argv`` without ``--traceback``."""
    rest = [arg for arg in argv if arg != TRACEBACK_FLAG]
    env = os.environ.get(TRACEBACK_ENV, "").strip().lower() not in ("", "0", "false", "no")
    return env or len(rest) != len(argv), rest


def report(error: BaseException, argv: list[str], show_traceback: bool) -> int:
    """Print ``error`` for the command line ``argv``; return the exit status (2: bad input, 1: anything else)."""
    if show_traceback:
        traceback.print_exception(error)
    bad_input = isinstance(error, (CLIError, ValueError, TypeError, FileNotFoundError))
    line = one_line(str(error), argv)
    if not bad_input:
        line = f"{type(error).__name__}: {line}"
    hint = "" if show_traceback or bad_input else f" (the traceback: {TRACEBACK_FLAG} or {TRACEBACK_ENV}=1)"
    print(f"lightning-grda: error: {line}{hint}", file=sys.stderr)
    return 2 if bad_input else 1


_SKIP = (
    "Does not validate against any of the Union subtypes",
    "Subtypes:",
    "Errors:",
    "Given value",
    "Expected a <class 'NoneType'>",
    "tip:",
)


def one_line(message: str, argv: list[str]) -> str:
    """Condense a jsonargparse or pack error ``message`` to one line naming the option as written in ``argv``.

    Example:
        >>> message = '''Parser key "model":
        ...   Does not validate against any of the Union subtypes
        ...   Errors:
        ...     - Problem with given class_path 'lightning_grda.models.ImageClassifier':
        ...         Parser key "c":
        ...           Expected a <class 'float'>. Got value: nan
        ...     - Expected a <class 'NoneType'>'''
        >>> one_line(message, ["fit", "--model.init_args.c=nan"])
        "Invalid model.init_args.c: 'nan'; expected a finite float"
        >>> one_line("Invalid batch_size: 0; expected an int > 0", ["--data.init_args.batch_size", "0"])
        'Invalid data.init_args.batch_size: 0; expected an int > 0'
    """
    top: str | None = None
    class_path: str | None = None
    key: str | None = None
    reasons: list[tuple[str | None, str | None, str]] = []
    structured = any(mark in message for mark in ("Parser key", "Does not validate", "Problem with given class_path"))
    for raw in message.splitlines() if structured else [" ".join(message.split())]:
        line = raw.strip()
        line = line[2:].strip() if line.startswith("- ") else line
        if not line or line.startswith(_SKIP):
            continue
        if match := re.fullmatch(r"Problem with given class_path '(.+)':", line):
            class_path, key = match[1], None
        elif match := re.fullmatch(r'Parser key "(.+)":', line):
            if top is None:
                top = match[1]
            else:
                key = match[1]
        else:
            reasons.append((class_path, key, line))
    if not reasons:
        return " ".join(message.split()) or "error"
    # A base class "does not accept" what the user's class does: that line says nothing.
    useful = [r for r in reasons if not re.fullmatch(r"Option '.+' is not accepted", r[2])] or reasons
    class_path, key, reason = useful[0]

    if match := re.fullmatch(r"Option '(.+)' is not accepted", reason):
        name = match[1]
        option = _as_written(argv, top, name)
        owner = class_path.rsplit(".", 1)[-1] if class_path else "this class"
        guess = difflib.get_close_matches(name, _parameters(class_path), n=1)
        suggestion = f"; did you mean {guess[0]}?" if guess else ""
        return f"Invalid {option}: no such option of {owner}{suggestion}"
    if match := re.fullmatch(r"Expected a (.+)\. Got value: (.*)", reason):
        option = _as_written(argv, top, key) if key else (top or "value")
        expected = _type_words(match[1])
        if "float" in expected and match[2].strip().lower().lstrip("+-") in ("nan", "inf", "infinity"):
            expected = "a finite float"
        return f"Invalid {option}: {match[2]!r}; expected {expected}"
    if match := re.match(r"(Invalid|Unknown) ([\w.]+): (.*)", reason):
        return f"{match[1]} {_as_written(argv, top, match[2])}: {match[3]}"
    where = _as_written(argv, top, key) if key else top
    return f"{where}: {reason}" if where else reason


def _type_words(text: str) -> str:
    if match := re.fullmatch(r"<class '(?:builtins\.)?(\w+)'>", text):
        name = match[1]
        return f"an {name}" if name[0] in "aeiou" else f"a {name}"
    if match := re.fullmatch(r"typing\.Literal\[(.*)\]", text):
        return f"one of ({match[1]})"
    return text


def _as_written(argv: list[str], top: str | None, key: str) -> str:
    """The option the user wrote for ``key`` (under ``top``), e.g. ``model.init_args.c`` or ``model.c``."""
    options = [arg[2:].split("=", 1)[0] for arg in argv if arg.startswith("--")]
    matches = [o for o in options if o == key or o.endswith(f".{key}")]
    if top:
        matches = [o for o in matches if o.startswith(top)] or matches
    if matches:
        return matches[-1]  # the last one given is the one that counts
    if top in ("model", "data"):
        return f"{top}.init_args.{key}"
    return f"{top}.{key}" if top else key


def _parameters(class_path: str | None) -> list[str]:
    """The ``__init__`` parameter names of the class at ``class_path`` (empty if it cannot be imported)."""
    if not class_path or "." not in class_path:
        return []
    module, name = class_path.rsplit(".", 1)
    try:
        cls: Any = getattr(importlib.import_module(module), name)
        return [p for p in inspect.signature(cls).parameters if p not in ("args", "kwargs")]
    except (ImportError, AttributeError, TypeError, ValueError):
        return []

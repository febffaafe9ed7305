"""The `vislab` command: parses the arguments (cli/parser.py) and calls the verb's function
(cli/verbs.py; the course's verbs in cli/course_verbs.py) with them by keyword."""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
import warnings

from vislab.errors import VislabError, VislabWarning
from vislab.runtime import tune_allocator

# control characters (a file name may hold a newline or a terminal's escape sequence) are
# shown escaped: a message stays one line and cannot drive the terminal
_CONTROLS = {c: f"\\x{c:02x}" for c in [*range(32), 127]} | {9: "\\t", 10: "\\n", 13: "\\r"}


def one_line(message: object) -> str:
    """message as printed: its control characters escaped."""
    return str(message).translate(_CONTROLS)


def _format_warning(message, category, filename, lineno, line=None) -> str:
    if issubclass(category, VislabWarning):
        return f"vislab: warning: {one_line(message)}\n"
    return _default_formatwarning(message, category, filename, lineno, line)


_default_formatwarning = warnings.formatwarning


class Terminated(BaseException):
    """SIGTERM, raised where the program is, so that every finally block runs."""


def _terminated(signum, frame) -> None:
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    from vislab.cli.parser import build_parser

    args = build_parser().parse_args(argv)
    tune_allocator()
    warnings.formatwarning = _format_warning
    options = {k: v for k, v in vars(args).items() if k not in ("command", "debug")}
    # SIGTERM (kill, a scheduler's time limit) unwinds like Ctrl-C: scratch files are removed
    main_thread = threading.current_thread() is threading.main_thread()
    before = signal.signal(signal.SIGTERM, _terminated) if main_thread else None
    try:
        return _run(args, options)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, before)


def _run(args, options: dict) -> int:
    from vislab.cli import course_verbs, verbs

    verb = getattr(verbs, args.command, None) or getattr(course_verbs, args.command)
    try:
        verb(**options)
    except VislabError as e:
        if args.debug:
            traceback.print_exc()
        print(f"vislab {args.command}: error: {one_line(e)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `vislab evaluate ... | head`: the reader left, as with any tool
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as e:  # a file or folder the user named: unreadable, unwritable, missing
        if args.debug:
            traceback.print_exc()
        where = f": {e.filename}" if e.filename else ""
        message = one_line(f"{e.strerror or e}{where}")
        print(f"vislab {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("terminated", file=sys.stderr)
        return 143
    return 0

"""The one rule for mistakes, shared by every command (benchmark.run, .datasets, .analysis, .status, .perf):

* a usage or input error is one ``error: ...`` line on stderr and exit code 2, with nothing written;
* a closed stdout (``... | head -1``) ends the command silently (exit 141, as a process killed by SIGPIPE).

``Parser`` is argparse's parser with that one-line error (and "did you mean" for a mistyped choice);
``entry(main)`` runs a command's ``main`` under that rule; ``check_out`` checks an output folder before
anything is written.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import sys
import tempfile
from pathlib import Path

EXIT_USAGE = 2
EXIT_PIPE = 141  # 128 + SIGPIPE


class UsageError(Exception):
    """Bad input: what was wrong and how to fix it, in one line."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str):
        choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if choice:
            close = difflib.get_close_matches(choice[1], re.findall(r"'([^']*)'", choice[2]), n=2, cutoff=0.6)
            message += f" (did you mean {' or '.join(close)}?)" if close else ""
        self.exit(EXIT_USAGE, f"error: {message} (see {self.prog} --help)\n")

    def _print_message(self, message, file=None):  # argparse's own swallows a closed pipe; entry() answers it
        if message:
            (file or sys.stderr).write(message)


def entry(main) -> None:
    """Exits with ``main()``'s code; a reader that closed the pipe ends it without a traceback."""
    try:
        try:
            code = main()
        except SystemExit as exc:  # argparse's --help and errors
            code = exc.code
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's own flush at exit too
        code = EXIT_PIPE
    sys.exit(code)


def check_out(out: Path, flag: str = "--out") -> None:
    """``out`` is a folder or can be made one: its nearest existing folder takes a new folder (tried, then
    removed: permission bits do not tell for root, nor for /proc). Raises ``UsageError``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{flag} {out} is a file, not a folder")
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"{flag} {out}: {parent} is a file, not a folder")
    try:
        tempfile.TemporaryDirectory(dir=parent, prefix=".probe-").cleanup()
    except OSError as exc:
        raise UsageError(f"{flag} {out}: {parent} is not writable ({exc.strerror or exc})") from None

"""The admin's console for the interactive commands (promote, `vault install`): streams, a
secret reader and a pager, all parameters, so tests drive them without a terminal (a pty test
then proves the real console once)."""

from __future__ import annotations

import getpass
import os
import pwd
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO


def run_pager(text: str) -> None:
    """Show `text` through `$PAGER` (else `pager`, `less` or `more`) on the terminal."""
    command = shlex.split(os.environ.get("PAGER", ""))
    if not command:
        command = [next((p for p in ("pager", "less") if shutil.which(p)), "more")]
    subprocess.run(command, input=text, text=True, check=False)


@dataclass
class Console:
    """Where promote talks to the admin: streams, a secret reader and a pager, all parameters."""

    input: TextIO
    output: TextIO
    read_secret: Callable[[str], str] | None = None
    """Reads a passphrase after a prompt without echo; None reads a plain line from `input`."""
    pager: Callable[[str], None] | None = None
    """Shows text with more than `page_lines` lines; None prints everything."""
    page_lines: int = 0

    @classmethod
    def terminal(cls, paged: bool = True) -> Console:
        """stdin/stdout; hidden passphrase input and (if `paged`) a pager when they are a terminal."""
        tty = sys.stdin.isatty() and sys.stdout.isatty()
        pager = tty and paged
        return cls(sys.stdin, sys.stdout, read_secret=getpass.getpass if tty else None,
                   pager=run_pager if pager else None,
                   page_lines=shutil.get_terminal_size().lines - 2 if pager else 0)

    def say(self, text: str = "") -> None:
        self.output.write(text + "\n")
        self.output.flush()

    def show(self, text: str) -> None:
        """Text that may be long: paged when it does not fit on the screen."""
        if self.pager is not None and 0 < self.page_lines < text.count("\n"):
            self.pager(text)
        else:
            self.output.write(text if text.endswith("\n") else text + "\n")
            self.output.flush()

    def _line(self, prompt: str) -> str:
        self.output.write(prompt)
        self.output.flush()
        line = self.input.readline()
        if not line:
            raise EOFError
        return line.rstrip("\n")

    def confirm(self, question: str) -> bool:
        """A yes/no question; only `y`/`yes` is yes, end of input is no."""
        try:
            return self._line(f"{question} [y/N] ").strip().lower() in ("y", "yes")
        except EOFError:
            self.say()
            return False

    def ask(self, prompt: str) -> str:
        """A line of free text; end of input gives an empty one."""
        try:
            return self._line(prompt)
        except EOFError:
            self.say()
            return ""

    def who(self) -> tuple[str, str | None]:
        """Who sits at this console: the login name of its terminal (else the account running
        aidepy), and the terminal (None when the input is not one)."""
        try:
            user = os.getlogin()
        except OSError:  # no utmp entry for the terminal (a pty, cron, a pipe)
            user = pwd.getpwuid(os.getuid()).pw_name
        try:
            tty: str | None = os.ttyname(self.input.fileno())
        except (OSError, ValueError):  # not a terminal, or a stream without a descriptor
            tty = None
        return user, tty

    def choice(self, question: str, answers: str, default: str | None = None) -> str | None:
        """One of the one-letter `answers` (case matters: `a` and `A` differ), asked again
        after anything else; an empty line is `default` (if given); None at the end of input."""
        while True:
            try:
                answer = self._line(f"{question} ").strip() or default or ""
            except EOFError:
                self.say()
                return None
            if len(answer) == 1 and answer in answers:
                return answer
            self.say(f"Please answer one of {', '.join(answers)}.")

    def secret(self, prompt: str) -> str:
        """A passphrase; end of input gives an empty one."""
        try:
            return self.read_secret(prompt) if self.read_secret is not None else self._line(prompt)
        except EOFError:
            self.say()
            return ""


@dataclass(frozen=True)
class Declined:
    """The admin's no: nothing was written, and why (an answer, not a failure: exit code 0)."""

    reason: str

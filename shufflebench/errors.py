"""The exceptions the CLI turns into one line: bad user input (exit status 2) and an interrupted run (130)."""

from __future__ import annotations


class UserError(Exception):
    """Bad input (a config, a workload parameter, a backend, a results folder); the message says what is allowed."""


class Interrupted(Exception):
    """A run stopped by Ctrl-C or SIGTERM; the message says what was kept and how to go on."""

    def __init__(self, message: str, signal_number: int) -> None:
        super().__init__(message)
        self.exit_status = 128 + signal_number

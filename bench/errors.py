"""The one exception type for bad user input: the CLI prints its message as one line and exits with status 2."""


class UserError(Exception):
    """Bad input (a config, a workload parameter, a backend, a results folder); the message says what is allowed."""

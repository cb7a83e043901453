"""The CLI's one error type: a message for people, a code for ``--json``."""


class CliError(Exception):
    def __init__(self, message: str, code: str = "error", exit_code: int = 1) -> None:
        super().__init__(message)
        self.code = code
        self.exit_code = exit_code

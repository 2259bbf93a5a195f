"""The shell-injection guard for operator-supplied commands (core.md §13.6, agent-targets-discovery.md §A2.3).

Target reload/validate commands and script hooks run through `sh -c`, so a command may hold words,
paths and flags but nothing the shell would treat as syntax. The server checks this on every target
create and update; the agent checks again before it runs anything.
"""

from __future__ import annotations

MAX_COMMAND_LENGTH = 1024
# Separators, pipes, substitution, grouping, redirection, escapes and quotes, plus the line breaks
# and NUL that end or split a command (core.md §13.6).
SHELL_METACHARACTERS = frozenset(";|&$`(){}<>\\\"'\n\r\x00")


def validate_command(text: str) -> None:
    """Refuse a command the shell could reinterpret.

    Raises ValueError when the command is empty, longer than 1024 characters, or contains any of
    ``; | & $ ` ( ) { } < > \\ " '``, newline, carriage return or NUL; the message names the
    first offending character.
    """
    if not text:
        raise ValueError("command is empty")
    if len(text) > MAX_COMMAND_LENGTH:
        raise ValueError(f"command is {len(text)} characters long; the limit is {MAX_COMMAND_LENGTH}")
    for position, char in enumerate(text):
        if char in SHELL_METACHARACTERS:
            raise ValueError(
                f"command contains shell metacharacter {char!r} at position {position}; "
                "use a plain command or point it at a script"
            )

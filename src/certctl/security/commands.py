"""The shell-injection guard for operator-supplied commands (core.md §13.6, agent-targets-discovery.md §A2.3).

A command may hold words, paths and flags but nothing a shell would treat as syntax, whether it later
runs through `sh -c` (script hooks) or as an argument list (the agent's deploy commands). The server
checks this on every target create and update; the agent checks again before it runs anything.
"""

from __future__ import annotations

MAX_COMMAND_LENGTH = 1024
# Separators, pipes, substitution, grouping, redirection, escapes and quotes, plus the line breaks
# and NUL that end or split a command (core.md §13.6).
SHELL_METACHARACTERS = frozenset(";|&$`(){}<>\\\"'\n\r\x00")
# Staged-file placeholders the agent substitutes into argument lists after this check
# (agent-targets-discovery.md §A2.1, §A2.3): the only braces a command may hold.
COMMAND_PLACEHOLDERS = ("{cert_path}", "{key_path}", "{chain_path}", "{pem_path}")


def validate_command(text: str) -> None:
    """Refuse a command the shell could reinterpret.

    Raises ValueError when the command is empty, longer than 1024 characters, or contains any of
    ``; | & $ ` ( ) { } < > \\ " '``, newline, carriage return or NUL outside the placeholders of
    COMMAND_PLACEHOLDERS; the message names the first offending character.
    """
    if not text:
        raise ValueError("command is empty")
    if len(text) > MAX_COMMAND_LENGTH:
        raise ValueError(f"command is {len(text)} characters long; the limit is {MAX_COMMAND_LENGTH}")
    masked = text
    for placeholder in COMMAND_PLACEHOLDERS:  # same length, so positions in the message stay true
        masked = masked.replace(placeholder, "_" * len(placeholder))
    for position, char in enumerate(masked):
        if char in SHELL_METACHARACTERS:
            raise ValueError(
                f"command contains shell metacharacter {char!r} at position {position}; "
                "use a plain command or point it at a script"
            )

"""Table and JSON output for the REST commands."""

from __future__ import annotations

import json
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

import typer


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2))


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    typer.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in cells:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def print_fields(pairs: Sequence[tuple[str, Any]]) -> None:
    width = max(len(label) for label, _ in pairs)
    for label, value in pairs:
        shown = ", ".join(map(str, value)) if isinstance(value, list) else ("" if value is None else value)
        typer.echo(f"{label + ':':<{width + 1}} {shown}")


def date_only(value: str | None) -> str:
    return value[:10] if value else ""

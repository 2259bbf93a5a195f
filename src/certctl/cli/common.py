"""Options every REST command accepts before or after the command name (group callback + command)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Annotated, Any

import typer

from certctl.cli.client import CliError, RestClient, resolve_config
from certctl.cli.output import OutputFormat

ServerOpt = Annotated[str | None, typer.Option("--server", help="https URL of certctl [CERTCTL_SERVER_URL]")]
ApiKeyOpt = Annotated[str | None, typer.Option("--api-key", help="API key [CERTCTL_API_KEY]")]
FormatOpt = Annotated[OutputFormat | None, typer.Option("--format", "--output", "-o", help="table or json")]
JsonOpt = Annotated[bool, typer.Option("--json", help="same as --format json")]
CaBundleOpt = Annotated[str | None, typer.Option("--ca-bundle", help="PEM bundle that signs the server certificate")]
InsecureOpt = Annotated[bool, typer.Option("--insecure", help="skip TLS verification (development only)")]


@dataclass(frozen=True, slots=True)
class Globals:
    server: str | None = None
    api_key: str | None = None
    output: OutputFormat | None = None
    ca_bundle: str | None = None
    insecure: bool = False

    def over(self, other: Globals) -> Globals:
        """Values set on `self` (the command) win over `other` (the group)."""
        return replace(
            other,
            server=self.server or other.server,
            api_key=self.api_key or other.api_key,
            output=self.output or other.output,
            ca_bundle=self.ca_bundle or other.ca_bundle,
            insecure=self.insecure or other.insecure,
        )


def group_callback(
    ctx: typer.Context,
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    output: FormatOpt = None,
    as_json: JsonOpt = False,
    ca_bundle: CaBundleOpt = None,
    insecure: InsecureOpt = False,
) -> None:
    inherited = ctx.obj if isinstance(ctx.obj, Globals) else Globals()
    mine = Globals(server, api_key, OutputFormat.JSON if as_json else output, ca_bundle, insecure)
    ctx.obj = mine.over(inherited)


@contextmanager
def rest(ctx: typer.Context, command: Globals) -> Iterator[tuple[RestClient, OutputFormat]]:
    """A client for the merged options; API and configuration errors print and exit 1."""
    options = command.over(ctx.obj if isinstance(ctx.obj, Globals) else Globals())
    try:
        client = RestClient(resolve_config(options.server, options.api_key, options.ca_bundle, options.insecure))
    except CliError as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(1) from exc
    try:
        yield client, options.output or OutputFormat.TABLE
    except CliError as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        client.close()


_GLOBAL_PARAMS = [
    inspect.Parameter("server", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=ServerOpt),
    inspect.Parameter("api_key", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=ApiKeyOpt),
    inspect.Parameter("output", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=FormatOpt),
    inspect.Parameter("as_json", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=JsonOpt),
    inspect.Parameter("ca_bundle", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=CaBundleOpt),
    inspect.Parameter("insecure", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=InsecureOpt),
]
_GLOBAL_NAMES = frozenset(p.name for p in _GLOBAL_PARAMS)
RestHandler = Callable[..., None]


def rest_command(app: typer.Typer, name: str) -> Callable[[RestHandler], RestHandler]:
    """Register `fn(client, output, **args)` as a command that also takes the global options.

    Global options may then be given before or after the command name (`certs renew X --format json`).
    """

    def decorate(fn: RestHandler) -> RestHandler:
        own = [
            p for p in inspect.signature(fn, eval_str=True).parameters.values() if p.name not in ("client", "output")
        ]
        ctx_param = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)

        @functools.wraps(fn)
        def command(ctx: typer.Context, **kwargs: Any) -> None:
            values = {k: kwargs.pop(k) for k in list(kwargs) if k in _GLOBAL_NAMES}
            options = Globals(
                values["server"],
                values["api_key"],
                OutputFormat.JSON if values["as_json"] else values["output"],
                values["ca_bundle"],
                values["insecure"],
            )
            with rest(ctx, options) as (client, output):
                fn(client, output, **kwargs)

        parameters = [ctx_param, *own, *_GLOBAL_PARAMS]
        command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in parameters}
        del command.__wrapped__  # typer must see the new signature, not the wrapped one
        app.command(name, help=fn.__doc__)(command)
        return fn

    return decorate

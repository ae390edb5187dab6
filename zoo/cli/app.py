"""The Typer application, its error handling and its output helpers. Each command module of this package
adds its commands to `app`; every command parses its options, calls one function of `zoo.api`, and prints
what that returns."""

from __future__ import annotations

import functools
import json
import os
import sys
import traceback
from collections.abc import Callable
from typing import Annotated, Any

import typer
from typer.core import TyperArgument, TyperGroup

from zoo.errors import ZooError, path_mistake, unexpected

# typer prints an argument's Python type after its name ("MODEL <str>", "IMAGES <list[str]>"); the name and
# the help say what it is, as they do for options (which show their metavar instead)
TyperArgument.display_type_rich = lambda self, ctx: None


def _version(value: bool) -> None:
    if value:
        from zoo import __version__

        typer.echo(f"resnet-zoo {__version__}")
        raise typer.Exit()


class _Zoo(TyperGroup):
    """The `zoo` group, which says which arguments it was given while it runs (`zoo.utils.argv`): a long
    job records its command as typed also when called in-process, where sys.argv is another program's."""

    def main(self, args: Any = None, *a: Any, **k: Any) -> Any:
        from zoo.utils.argv import GIVEN

        token = GIVEN.set(None if args is None else tuple(args))
        try:
            return super().main(args, *a, **k)
        finally:
            GIVEN.reset(token)


app = typer.Typer(
    cls=_Zoo,
    help="resnet-zoo: the ResNets of He et al. 2015, exported through ONNX to TensorRT, with parity checks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: rich help formatting alone costs ~0.15 s of start-up
    add_completion=False,
)


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of an unexpected error (also ZOO_DEBUG=1).")
    ] = False,
) -> None:
    """resnet-zoo: the ResNets of He et al. 2015, exported through ONNX to TensorRT, with parity checks."""
    if debug:
        os.environ["ZOO_DEBUG"] = "1"


def _from_click(e: BaseException) -> bool:
    """Exit, Abort and usage errors of click (which typer vendors): click shows them itself."""
    return type(e).__module__.startswith(("typer.", "click."))


def _debugging() -> bool:
    return os.environ.get("ZOO_DEBUG", "") not in ("", "0")


def fail(e: BaseException) -> None:
    """The last word on an error: a ZooError's sentence (exit 1); anything else one sentence naming what
    was being read (exit 3: click keeps 2 for a mistyped option or argument), with the traceback only
    under --debug."""
    mistake = str(e) if isinstance(e, ZooError) else path_mistake(e)
    if mistake:
        typer.echo(f"error: {mistake}", err=True)
        raise typer.Exit(1)
    if _debugging():
        traceback.print_exception(e)
    typer.echo(f"error: {unexpected(e)}", err=True)
    raise typer.Exit(3)


def command(*args: Any, **kwargs: Any) -> Callable:
    """app.command, with a user's mistake (ZooError) shown as one sentence and exit code 1, and anything
    unforeseen as one sentence and exit code 3."""

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def run(*a: Any, **k: Any) -> Any:
            if k.get("as_json"):  # one JSON document on stdout, and nothing drawn on stderr either
                from zoo.utils import progress

                progress.quiet()
            try:
                return fn(*a, **k)
            except Exception as e:  # noqa: BLE001  (the last resort: one sentence, never a traceback)
                if _from_click(e):
                    raise
                fail(e)

        return app.command(*args, **kwargs)(run)

    return wrap


def emit_json(doc: Any) -> None:
    typer.echo(json.dumps(doc, indent=2, default=str))


def log_for(as_json: bool) -> Callable[[str], None]:
    """Where a command's progress and warning lines go: standard error, or nowhere under --json."""
    return (lambda _m: None) if as_json else (lambda m: typer.echo(m, err=True))


def split_list(text: str) -> list[str]:
    """'a, b,,c' -> ['a', 'b', 'c']: a comma-separated option."""
    return [t.strip() for t in text.split(",") if t.strip()]


def main() -> None:
    from zoo import cli  # noqa: F401  (registers every command)

    try:
        app()  # click itself turns usage errors, --help and Ctrl-C into their messages and exit codes
    except Exception as e:  # noqa: BLE001  (raised outside a command, e.g. while parsing an option)
        try:
            fail(e)
        except typer.Exit as done:
            sys.exit(done.exit_code)

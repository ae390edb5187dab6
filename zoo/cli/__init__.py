"""`zoo`: the command line. One module per group of commands (deploy, models, training, paper); the
options they share are declared once in `options.py`. Each command calls one function of `zoo.api`.
Commands import the zoo lazily so that `zoo --help` and `zoo list` answer without importing torch.
The modules are imported in the order `zoo --help` lists their commands: deployment first."""

# isort: off
from zoo.cli import deploy, models, training, paper  # noqa: F401  (each adds its commands to `app`)
from zoo.cli.app import app, main

# isort: on

__all__ = ["app", "main"]

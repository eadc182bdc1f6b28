"""The `%serve` subcommands, one module per group; importing this package registers them all.

The order of the imports is the order of `%serve help`.
"""
# isort: off
from jupyter_serving.magics.commands import (  # noqa: F401 - imported to register their commands
    connect,
    create,
    gateway,
    info,
    records,
    traffic,
    entities,
    lifecycle,
    access,
    ui,
    chat,
    bench,
    help,
)
# isort: on

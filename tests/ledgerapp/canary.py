"""A module no consumer may ever import: it writes a "canary" ledger event when it is imported.

Poison messages name ``tests.ledgerapp.canary.run`` as their task and stored errors name
``tests.ledgerapp.canary.Boom`` as their exception: tasks are resolved only through the registry and a stored
exception is rebuilt only from a module already imported (RELIABILITY R15, R23), so the event must never appear.
"""

from . import ledger

ledger.write("canary", n=-1)


class Boom(Exception):
    """Never instantiated."""


def run() -> None:
    """Never called."""
    ledger.write("canary-run", n=-1)

"""App config of the ledger test app."""

from django.apps import AppConfig


class LedgerAppConfig(AppConfig):
    """The ledger test app."""

    name = "tests.ledgerapp"
    label = "ledgerapp"

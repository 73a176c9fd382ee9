"""Moves Microsoft 365 data into open-source services with a ledger that makes every run resumable."""

__version__ = "0.1.0"

"""The ledger: every user, container and item the migration touches, and an audit chain of events."""

from state.ledger import ItemState, Ledger

__all__ = ["ItemState", "Ledger"]

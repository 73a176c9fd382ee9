"""Pure functions from source items to target items: no I/O, no clock, no globals."""

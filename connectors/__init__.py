"""Connectors: sources that read from Microsoft 365 and sinks that write to open-source services."""

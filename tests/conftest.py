"""Fixtures for servers that take seconds to start, registered once here so that every test module
shares one instance per session (a fixture imported into several modules would start one each)."""

from tests.fixtures.synapse import synapse  # noqa: F401

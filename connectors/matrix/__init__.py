"""The Matrix sink: Teams chats and channels into rooms, written through an application service."""

from connectors.matrix.sink import MatrixSink

__all__ = ["MatrixSink"]

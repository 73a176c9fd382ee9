"""Builds the connectors and mappings a configuration names."""

from __future__ import annotations

from connectors.directory import DirectorySink
from connectors.example import example_source
from connectors.memory import MemorySink
from mappings import example as example_mapping
from migrator.config import Config, SinkConfig
from migrator.contracts import Sink, Source, WorkloadMapping
from migrator.errors import ConfigError


def build_source(config: Config) -> Source:
    if config.source_kind == "example":
        return example_source(seed=config.source.get("seed", 7), users=config.source.get("users", 6))
    raise ConfigError(
        f"source kind {config.source_kind!r} is not available in this version",
        hint='use kind = "example" to try the tool',
    )


def build_sink(workload: str, sink: SinkConfig) -> Sink:
    if sink.kind == "directory":
        return DirectorySink(sink.options["path"])
    if sink.kind == "memory":
        return MemorySink()
    raise ConfigError(f"targets.{workload}.kind {sink.kind!r} is not available in this version", hint='use kind = "directory"')


def build_mappings(config: Config) -> dict[str, WorkloadMapping]:
    example = WorkloadMapping(example_mapping.container_path, example_mapping.map_item)
    return {workload: example for workload in config.workloads}

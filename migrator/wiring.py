"""Builds the connectors and mappings a configuration names."""

from __future__ import annotations

from pathlib import Path

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
    return graph_source(config)


def graph_source(config: Config) -> Source:
    # Imported here: msgraph-sdk takes a second to import, which runs on the example tenant should not pay.
    from connectors.graph.auth import MICROSOFT_AUTHORITY_HOST, Credentials, certificate_credential
    from connectors.graph.source import GraphSource
    from connectors.graph.transport import Politeness

    s = config.source
    certificate = None
    if "certificate" in s:
        certificate = certificate_credential(Path(s["certificate"]), s["certificate_private_key"].resolve())
    credentials = Credentials(
        tenant_id=s["tenant_id"],
        client_id=s["client_id"],
        client_secret=s["client_secret"].resolve() if "client_secret" in s else None,
        certificate=certificate,
        authority_host=s.get("authority_url", MICROSOFT_AUTHORITY_HOST),
        ca_bundle=s.get("ca_bundle"),
        token_cache=Path(s["token_cache"]) if "token_cache" in s else None,
        device_code=s.get("auth") == "device_code",
    )
    return GraphSource(credentials, s.get("graph_url", "https://graph.microsoft.com/v1.0"), Politeness(per_mailbox=config.run.per_mailbox))


def build_sink(workload: str, sink: SinkConfig) -> Sink:
    if sink.kind == "directory":
        return DirectorySink(sink.options["path"])
    if sink.kind == "memory":
        return MemorySink()
    raise ConfigError(f"targets.{workload}.kind {sink.kind!r} is not available in this version", hint='use kind = "directory"')


def build_mappings(config: Config) -> dict[str, WorkloadMapping]:
    example = WorkloadMapping(example_mapping.container_path, example_mapping.map_item)
    return {workload: example for workload in config.workloads}

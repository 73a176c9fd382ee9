"""Builds the connectors and mappings a configuration names."""

from __future__ import annotations

from pathlib import Path

from connectors.directory import DirectorySink
from connectors.example import example_source
from connectors.memory import MemorySink
from mappings import example as example_mapping
from migrator.config import Config, SinkConfig
from migrator.contracts import Sink, Source, WorkloadMapping
from migrator.errors import ConfigError, ItemError


def build_source(config: Config) -> Source:
    if config.source_kind == "example":
        return example_source(seed=config.source.get("seed", 7), users=config.source.get("users", 6))
    return graph_source(config)


def graph_source(config: Config) -> Source:
    # Imported here: msgraph-sdk takes a second to import, which runs on the example tenant should not pay.
    from connectors.graph.auth import (
        MICROSOFT_AUTHORITY_HOST,
        Credentials,
        certificate_credential,
    )
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
        skip_tls_verify=config.skip_tls_verify,
    )
    return GraphSource(credentials, s.get("graph_url", "https://graph.microsoft.com/v1.0"), Politeness(per_mailbox=config.run.per_mailbox, teams_reads_per_second=config.run.teams_reads_per_second))


def build_sink(workload: str, sink: SinkConfig, config: Config | None = None) -> Sink:
    if sink.kind == "directory":
        return DirectorySink(sink.options["path"], tree=workload == "files")
    if sink.kind == "memory":
        return MemorySink()
    if sink.kind == "maildir":
        from connectors.maildir import MaildirSink

        return MaildirSink(sink.options["path"])
    if sink.kind == "imap":
        return imap_sink(sink, config)
    if sink.kind in ("caldav", "carddav"):
        return dav_sink(sink, config)
    if sink.kind in ("webdav", "nextcloud"):
        return files_sink(sink, config)
    if sink.kind == "matrix":
        from connectors.matrix import MatrixSink

        o = sink.options
        return MatrixSink(o["url"], o["as_token"].resolve(), chat_options(sink), bot_localpart=o["bot"], ca_file=o.get("ca_bundle"),
                          skip_tls_verify=skip_tls_verify(config))
    raise ConfigError(f"targets.{workload}.kind {sink.kind!r} is not available in this version", hint='use kind = "directory"')


def skip_tls_verify(config: Config | None) -> bool:
    """Only --insecure-skip-tls-verify (Config.skip_tls_verify) turns certificate checks off."""
    return config is not None and config.skip_tls_verify


def imap_sink(sink: SinkConfig, config: Config | None) -> Sink:
    from connectors.imap import ImapSink
    from mappings.mail_folders import FolderRules

    o = sink.options
    if "master_user" in o:
        master, secret = o["master_user"], o["master_password"].resolve()

        def login(owner: str) -> tuple[str, str]:  # Dovecot's master user writes into every mailbox
            return f"{owner}*{master}", secret
    else:
        password = o["password"].resolve()

        def login(owner: str) -> tuple[str, str]:
            return owner, password

    rules = FolderRules.from_toml(config.mail.get("folders", {})) if config else FolderRules.from_toml({})
    return ImapSink(o["host"], o["port"], security=o["security"], login=login, ca_file=o.get("ca_bundle"),
                    special_use=special_use_of(rules), connections_per_owner=o.get("connections_per_owner", 2),
                    skip_tls_verify=skip_tls_verify(config))


def dav_login(o: dict):
    """owner -> (login, password): one app password per user ("login,password" lines), or one shared password."""
    if "user_passwords" in o:
        table = dict(line.split(",", 1) for line in o["user_passwords"].resolve().splitlines() if "," in line)

        def login(owner: str) -> tuple[str, str]:
            if owner not in table:
                raise ItemError(f"no password for {owner} in {o['user_passwords'].file or o['user_passwords'].env}")
            return owner, table[owner].strip()
        return login
    password = o["password"].resolve()
    return lambda owner: (owner, password)


def dav_sink(sink: SinkConfig, config: Config | None = None) -> Sink:
    from connectors.dav import DavSink

    o = sink.options
    home = (lambda owner: o["home"].format(user=owner)) if "home" in o else None
    return DavSink(o["url"], kind=sink.kind, login=dav_login(o), home=home, ca_file=o.get("ca_bundle"), skip_tls_verify=skip_tls_verify(config))


def files_sink(sink: SinkConfig, config: Config | None = None) -> Sink:
    o = sink.options
    verify_content = o.get("verify_content", True)
    if sink.kind == "nextcloud":
        from connectors.nextcloud import CHUNK_SIZE, NextcloudSink
        from mappings.file_names import NameRules, legal_name

        files = config.files if config else {}
        # Each site becomes a Group Folder mounted at its legal name, unless libraries go to a plain folder.
        group_folders = {} if files.get("libraries_folder") else {
            legal_name(site, NameRules.nextcloud_defaults()).name: groups for site, groups in files.get("sites", {}).items()
        }
        return NextcloudSink(o["url"], dav_login(o), ca_file=o.get("ca_bundle"), verify_content=verify_content,
                             chunk_size=o.get("chunk_size", CHUNK_SIZE), group_folders=group_folders, skip_tls_verify=skip_tls_verify(config))
    from connectors.webdav import WebDavSink

    home = (lambda owner: o["home"].format(user=owner)) if "home" in o else None
    return WebDavSink(o["url"], dav_login(o), home=home, ca_file=o.get("ca_bundle"), verify_content=verify_content,
                      skip_tls_verify=skip_tls_verify(config))


def special_use_of(rules):
    """The special-use flag a target folder gets when it is created (\\Sent for "Sent", ...)."""
    from mappings.mail_folders import SPECIAL_USE

    names = {rules.special_use_names.get(role, name): flag for role, (name, flag) in SPECIAL_USE.items() if flag}
    return lambda path: names.get(path[0]) if len(path) == 1 else None


def build_mappings(config: Config) -> dict[str, WorkloadMapping]:
    example = WorkloadMapping(example_mapping.container_path, example_mapping.map_item)
    mappings = {workload: example for workload in config.workloads}
    if config.source_kind == "graph" and "mail" in config.workloads:
        mappings["mail"] = mail_workload(config)
    if config.source_kind == "graph" and "calendar" in config.workloads:
        from mappings.calendar import calendar_mapping

        mappings["calendar"] = calendar_mapping()
    if config.source_kind == "graph" and "contacts" in config.workloads:
        from mappings.contacts import ContactOptions, contacts_mapping

        # The tenant's own domain marks an address as work; Graph does not label them.
        tenant = config.source.get("tenant_id", "")
        mappings["contacts"] = contacts_mapping(ContactOptions.of(work_domains=[tenant] if "." in tenant else []))
    if config.source_kind == "graph" and "files" in config.workloads:
        mappings["files"] = files_workload(config)
    if config.source_kind == "graph" and "chat" in config.workloads and config.targets["chat"].kind == "matrix":
        from mappings.chat import chat_mapping

        mappings["chat"] = chat_mapping(chat_options(config.targets["chat"]))
    return mappings


def files_workload(config: Config, rules=None) -> WorkloadMapping:
    """`rules`: the names the target refuses, as its server publishes them (None: Nextcloud's defaults)."""
    from mappings.file_names import NameRules
    from mappings.files import FileOptions, files_mapping
    from mappings.identity import resolve_identity

    def account_of(address: str) -> str | None:
        if "@" not in address:
            return None
        return resolve_identity(address, config.identity_templates, config.identity_overrides).nextcloud_user

    f = config.files
    options = FileOptions(
        rules=rules or NameRules.nextcloud_defaults(), onedrive_folder=f.get("onedrive_folder", "OneDrive"),
        libraries_folder=f.get("libraries_folder", ""), account_of=account_of, groups=dict(f.get("groups", {})),
    )
    return files_mapping(options)


async def adapt_to_targets(config: Config, mappings: dict[str, WorkloadMapping], sinks: dict[str, Sink]) -> None:
    """Mappings that depend on what a target server publishes (the file names Nextcloud refuses)."""
    name_rules = getattr(sinks.get("files"), "name_rules", None)
    if config.source_kind == "graph" and "files" in mappings and name_rules is not None:
        mappings["files"] = files_workload(config, await name_rules())


def chat_options(sink: SinkConfig):
    from mappings.chat import ChatOptions

    o = sink.options
    return ChatOptions(o["server_name"], ghost_prefix=o["ghost_prefix"], room_prefix=o["room_prefix"])


def mail_workload(config: Config) -> WorkloadMapping:
    from mappings.mail import MailOptions, map_message
    from mappings.mail_folders import FolderRules, check_one_to_one, target_path

    rules = FolderRules.from_toml(config.mail.get("folders", {}))
    options = MailOptions(add_source_header=config.mail.get("add_source_header", True))
    return WorkloadMapping(
        container_path=lambda container: target_path(container, rules),
        item=lambda item, container: map_message(item, container, options, rules),
        container_paths=lambda containers: check_one_to_one(containers, rules, require_sources=False),
    )

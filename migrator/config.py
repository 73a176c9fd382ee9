"""The TOML configuration: parsed, checked key by key, and turned into typed settings.

Every problem raises ConfigError naming the key and the fix, before anything starts.
"""

from __future__ import annotations

import csv
import difflib
import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mappings.identity import PLACEHOLDERS, TARGET_FIELDS
from migrator.errors import ConfigError
from migrator.model import WORKLOADS

SOURCE_KINDS = ("example", "graph")
SINK_KINDS = ("directory", "memory", "imap", "maildir", "caldav", "carddav", "webdav", "nextcloud", "matrix")
SINK_WORKLOADS = {
    "imap": ("mail",), "maildir": ("mail",), "caldav": ("calendar",), "carddav": ("contacts",), "webdav": ("files",), "nextcloud": ("files",),
    "matrix": ("chat",),
}
IMAP_SECURITY = ("tls", "starttls", "plain")
_SECRET_KEY = re.compile(r"(secret|password|token|private_key)", re.IGNORECASE)


@dataclass(frozen=True)
class SecretRef:
    """A secret named by where it lives; the value is read only when a connector needs it."""

    key: str
    env: str | None = None
    file: str | None = None

    def resolve(self) -> str:
        if self.env is not None:
            value = os.environ.get(self.env)
            if value is None:
                raise ConfigError(f"{self.key}: environment variable {self.env} is not set", hint=f"export {self.env}=... before running")
            return value
        path = Path(self.file).expanduser()
        try:
            return path.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{self.key}: cannot read secret file {path}: {exc.strerror}", hint="check the path and its permissions") from None

    def __repr__(self) -> str:
        return f"SecretRef({self.key}: {'env ' + self.env if self.env else 'file ' + str(self.file)})"


@dataclass(frozen=True)
class SinkConfig:
    kind: str
    options: dict[str, Any]


@dataclass(frozen=True)
class RunSettings:
    concurrency: int = 16
    per_mailbox: int = 4
    teams_reads_per_second: float = 20.0
    max_attempts: int = 5
    retry_base_seconds: float = 1.0
    retry_max_seconds: float = 300.0
    call_retries: int = 5
    verify_sample: float = 1.0  # share of copied items re-read at the target by verify


@dataclass(frozen=True)
class Config:
    source_kind: str
    source: dict[str, Any]
    ledger_url: str
    department: str | None
    users_file: Path | None
    workloads: tuple[str, ...]
    targets: dict[str, SinkConfig]
    identity_templates: dict[str, str]
    identity_overrides: dict[str, dict[str, str]]
    run: RunSettings
    mail: dict[str, Any] = field(default_factory=dict)
    files: dict[str, Any] = field(default_factory=dict)
    base_dir: Path = field(default=Path("."))
    # No config key sets this: only the command line's --insecure-skip-tls-verify, which every run records.
    skip_tls_verify: bool = False


SCHEMA: dict[str, dict[str, type | tuple[type, ...]]] = {
    "source": {
        "kind": str, "seed": int, "users": int, "tenant_id": str, "client_id": str, "client_secret": dict,
        "certificate": str, "certificate_private_key": dict, "graph_url": str, "authority_url": str, "ca_bundle": str,
        "auth": str, "token_cache": str,
    },
    "ledger": {"url": str},
    "batch": {"department": str, "users_file": str},
    "workloads": {"enabled": list},
    "identity": {"imap_login": str, "nextcloud_user": str, "matrix_id": str, "overrides": str},
    "mail": {"folders": dict, "add_source_header": bool},
    "files": {"onedrive_folder": str, "libraries_folder": str, "groups": dict, "sites": dict, "libraries_owner": str},
    "run": {
        "concurrency": int, "per_mailbox": int, "teams_reads_per_second": (int, float), "max_attempts": int, "retry_base_seconds": (int, float),
        "retry_max_seconds": (int, float), "call_retries": int, "verify_sample": (int, float),
    },
}
SINK_SCHEMA: dict[str, type | tuple[type, ...]] = {
    "kind": str, "path": str, "host": str, "port": int, "security": str, "ca_bundle": str,
    "master_user": str, "master_password": dict, "password": dict, "connections_per_owner": int,
    "url": str, "home": str, "user_passwords": dict, "verify_content": bool, "chunk_size": int,
    "server_name": str, "as_token": dict, "hs_token": dict, "ghost_prefix": str, "room_prefix": str, "bot": str,
}

DEFAULT_IDENTITY = {"imap_login": "{upn}", "nextcloud_user": "{local}", "matrix_id": "@{local}:example.org"}


def _unknown(key: str, allowed: list[str], where: str) -> ConfigError:
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(sorted(allowed))}"
    return ConfigError(f"unknown key {where}{key}", hint=hint)


def _type_name(types: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", list: "a list", dict: "a table", bool: "true or false"}
    types = types if isinstance(types, tuple) else (types,)
    return " or ".join(names[t] for t in types)


def _check_table(table: dict, schema: dict, where: str) -> None:
    for key, value in table.items():
        if key not in schema:
            raise _unknown(key, list(schema), where)
        expected = schema[key]
        if _SECRET_KEY.search(key):
            _secret(value, f"{where}{key}")
            continue
        if (isinstance(value, bool) and expected is not bool) or not isinstance(value, expected):
            raise ConfigError(f"{where}{key} must be {_type_name(expected)}, got {value!r}", hint="fix the value in the config file")


def _secret(value: Any, key: str) -> SecretRef:
    if isinstance(value, dict) and len(value) == 1 and ("env" in value or "file" in value):
        (kind, ref), = value.items()
        if isinstance(ref, str) and ref:
            return SecretRef(key, env=ref if kind == "env" else None, file=ref if kind == "file" else None)
    raise ConfigError(
        f"{key} is a secret and must be a reference, not a value",
        hint=f'write {key.rsplit(".", 1)[-1]} = {{ env = "VARIABLE" }} or {{ file = "/path/to/secret" }}',
    )


def _positive(value: Any, key: str) -> None:
    if value <= 0:
        raise ConfigError(f"{key} must be greater than 0, got {value!r}", hint="fix the value in the config file")


def load_config(path: Path) -> Config:
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist", hint="run `migrator init` to write a commented template") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}", hint="fix the syntax at the line named") from None
    return parse_config(raw, base_dir=path.parent)


def parse_config(raw: dict[str, Any], base_dir: Path = Path(".")) -> Config:
    allowed = [*SCHEMA, "targets"]
    for section, value in raw.items():
        if section not in allowed:
            raise _unknown(section, allowed, "")
        if not isinstance(value, dict):
            raise ConfigError(f"[{section}] must be a table", hint=f"write it as a [{section}] section")
        if section != "targets":
            _check_table(value, SCHEMA[section], f"{section}.")

    source = dict(raw.get("source", {}))
    source_kind = source.get("kind", "")
    if source_kind not in SOURCE_KINDS:
        raise ConfigError(f"source.kind must be one of {', '.join(SOURCE_KINDS)}, got {source_kind!r}", hint='e.g. kind = "graph"')
    for key in list(source):
        if _SECRET_KEY.search(key):
            ref = _secret(source[key], f"source.{key}")
            # A relative secret file is relative to the config file, like every other path in it.
            source[key] = replace(ref, file=str((base_dir / ref.file).expanduser())) if ref.file else ref
    if source_kind == "graph":
        _check_graph_source(source, base_dir)

    ledger_url = raw.get("ledger", {}).get("url", "sqlite:///migration.db")
    ledger_url = _anchor_sqlite(ledger_url, base_dir)

    batch = raw.get("batch", {})
    department, users_file = batch.get("department"), batch.get("users_file")
    if department is not None and users_file is not None:
        raise ConfigError("batch.department and batch.users_file are both set", hint="choose one way to select users")

    workloads = tuple(raw.get("workloads", {}).get("enabled", WORKLOADS))
    for name in workloads:
        if name not in WORKLOADS:
            raise ConfigError(f"workloads.enabled names unknown workload {name!r}", hint=f"choose from {', '.join(WORKLOADS)}")

    targets = _parse_targets(raw.get("targets", {}), workloads, base_dir)

    identity = raw.get("identity", {})
    templates = {name: identity.get(name, DEFAULT_IDENTITY[name]) for name in TARGET_FIELDS}
    for name, template in templates.items():
        for placeholder in re.findall(r"{([^}]*)}", template):
            if placeholder not in PLACEHOLDERS:
                raise ConfigError(f"identity.{name} uses unknown placeholder {{{placeholder}}}", hint=f"use {', '.join('{' + p + '}' for p in PLACEHOLDERS)}")
    overrides = _read_overrides(base_dir / identity["overrides"]) if "overrides" in identity else {}
    if "chat" in workloads and targets["chat"].kind == "matrix" and not re.fullmatch(r"@[^:]+:.+", templates["matrix_id"]):
        raise ConfigError(f"identity.matrix_id must render a Matrix user id, got {templates['matrix_id']!r}", hint='e.g. matrix_id = "@{local}:example.org"')

    run_raw = raw.get("run", {})
    for key, value in run_raw.items():
        _positive(value, f"run.{key}")
    if run_raw.get("verify_sample", 1) > 1:
        raise ConfigError(f"run.verify_sample must be between 0 and 1, got {run_raw['verify_sample']!r}", hint="e.g. 0.1 re-reads one item in ten")
    run = RunSettings(**{k: (float(v) if k.endswith("seconds") or k == "verify_sample" else v) for k, v in run_raw.items()})

    return Config(
        source_kind=source_kind,
        source=source,
        ledger_url=ledger_url,
        department=department,
        users_file=(base_dir / users_file) if users_file else None,
        workloads=workloads,
        targets=targets,
        identity_templates=templates,
        identity_overrides=overrides,
        run=run,
        mail=dict(raw.get("mail", {})),
        files=_files_section(raw.get("files", {})),
        base_dir=base_dir,
    )


def _check_graph_source(source: dict[str, Any], base_dir: Path) -> None:
    for key in ("tenant_id", "client_id"):
        if key not in source:
            raise ConfigError(f"source.{key} is required for a graph source", hint="copy it from the app registration in Entra ID")
    auth = source.setdefault("auth", "app")
    if auth not in ("app", "device_code"):
        raise ConfigError(f"source.auth must be app or device_code, got {auth!r}", hint="app: client secret or certificate; device_code: one user signs in")
    if auth == "app" and "client_secret" not in source and "certificate" not in source:
        raise ConfigError("a graph source with auth = app needs source.client_secret or source.certificate",
                          hint='e.g. client_secret = { env = "MIGRATOR_CLIENT_SECRET" }')
    if "certificate" in source and "certificate_private_key" not in source:
        raise ConfigError("source.certificate needs source.certificate_private_key", hint='e.g. certificate_private_key = { file = "app-key.pem" }')
    for key in ("ca_bundle", "certificate", "token_cache"):
        if key in source:
            source[key] = str((base_dir / source[key]).resolve())
    for key in ("ca_bundle", "certificate"):
        if key in source and not Path(source[key]).is_file():
            raise ConfigError(f"source.{key} names {source[key]}, which is not a file", hint="check the path (relative paths are relative to the config file)")
    for key in ("graph_url", "authority_url"):
        if key in source and not source[key].startswith("https://"):
            raise ConfigError(f"source.{key} must be an https:// URL, got {source[key]!r}", hint="Microsoft Graph and its identity platform are served over TLS")


def _anchor_sqlite(url: str, base_dir: Path) -> str:
    """A relative SQLite path is relative to the config file, not to wherever the command runs."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix + ":memory:":
        return prefix + str((base_dir / url[len(prefix):]).resolve())
    return url


def _parse_targets(raw: dict[str, Any], workloads: tuple[str, ...], base_dir: Path) -> dict[str, SinkConfig]:
    targets: dict[str, SinkConfig] = {}
    for workload, table in raw.items():
        if workload not in WORKLOADS:
            raise _unknown(workload, list(WORKLOADS), "targets.")
        if not isinstance(table, dict):
            raise ConfigError(f"[targets.{workload}] must be a table", hint=f"write it as a [targets.{workload}] section")
        _check_table(table, SINK_SCHEMA, f"targets.{workload}.")
        kind = table.get("kind")
        if kind not in SINK_KINDS:
            raise ConfigError(f"targets.{workload}.kind must be one of {', '.join(SINK_KINDS)}, got {kind!r}", hint='e.g. kind = "directory"')
        options = {k: v for k, v in table.items() if k != "kind"}
        for key in list(options):
            if _SECRET_KEY.search(key):
                ref = _secret(options[key], f"targets.{workload}.{key}")
                options[key] = replace(ref, file=str((base_dir / ref.file).expanduser())) if ref.file else ref
        if kind in ("directory", "maildir"):
            if "path" not in options:
                raise ConfigError(f"targets.{workload}.path is required for a {kind} target", hint='e.g. path = "migrated/' + workload + '"')
            options["path"] = str((base_dir / options["path"]).resolve())
        if kind in SINK_WORKLOADS and workload not in SINK_WORKLOADS[kind]:
            only = SINK_WORKLOADS[kind][0]
            raise ConfigError(f"targets.{workload}.kind = {kind!r} only takes {only}", hint=f"use it under [targets.{only}]")
        if kind == "imap":
            _check_imap(workload, options, base_dir)
        if kind in ("caldav", "carddav", "webdav", "nextcloud"):
            _check_dav(workload, options, base_dir)
        if kind == "nextcloud" and options.get("chunk_size", 5 << 20) < 5 << 20:
            raise ConfigError(f"targets.{workload}.chunk_size must be at least 5242880 (5 MiB), got {options['chunk_size']}",
                              hint="Nextcloud's chunked upload takes chunks of 5 MiB to 5 GiB")
        if kind == "matrix":
            _check_matrix(workload, options, base_dir)
        targets[workload] = SinkConfig(kind, options)
    for workload in workloads:
        if workload not in targets:
            raise ConfigError(f"workload {workload!r} is enabled but has no [targets.{workload}] section", hint="add the section or remove the workload from workloads.enabled")
    return targets


def _check_imap(workload: str, options: dict[str, Any], base_dir: Path) -> None:
    where = f"targets.{workload}"
    if "host" not in options:
        raise ConfigError(f"{where}.host is required for an imap target", hint='e.g. host = "imap.example.org"')
    security = options.setdefault("security", "tls")
    if security not in IMAP_SECURITY:
        raise ConfigError(f"{where}.security must be one of {', '.join(IMAP_SECURITY)}, got {security!r}", hint="tls (port 993) or starttls (143); plain only on a trusted link")
    options.setdefault("port", 993 if security == "tls" else 143)
    if ("master_user" in options) != ("master_password" in options):
        raise ConfigError(f"{where}.master_user and {where}.master_password go together", hint="a Dovecot master user logs in as user*master")
    if "master_user" not in options and "password" not in options:
        raise ConfigError(f"{where} needs master_user + master_password, or password", hint='e.g. master_password = { env = "IMAP_MASTER_PASSWORD" }')
    if "ca_bundle" in options:
        options["ca_bundle"] = str((base_dir / options["ca_bundle"]).resolve())


def _check_dav(workload: str, options: dict[str, Any], base_dir: Path) -> None:
    where = f"targets.{workload}"
    url = options.get("url", "")
    if not url.startswith(("https://", "http://")):
        raise ConfigError(f"{where}.url must be the server's http(s) URL, got {url!r}", hint='e.g. url = "https://cloud.example.org"')
    if "password" not in options and "user_passwords" not in options:
        raise ConfigError(f"{where} needs password or user_passwords", hint='e.g. user_passwords = { file = "app-passwords.csv" } (login,password per line)')
    if "ca_bundle" in options:
        options["ca_bundle"] = str((base_dir / options["ca_bundle"]).resolve())


def _files_section(files: dict[str, Any]) -> dict[str, Any]:
    for key in ("onedrive_folder", "libraries_folder"):
        value = files.get(key)
        if value is not None and ("/" in value or value in (".", "..")):
            raise ConfigError(f"files.{key} must be one folder name, got {value!r}", hint='e.g. onedrive_folder = "OneDrive"')
    for name, group in files.get("groups", {}).items():
        if not isinstance(group, str) or not group:
            raise ConfigError(f"files.groups.{name!r} must name a target group, got {group!r}", hint='e.g. "Leden van Financien" = "financien"')
    for name, groups in files.get("sites", {}).items():
        if not isinstance(groups, list) or not all(isinstance(g, str) and g for g in groups):
            raise ConfigError(f"files.sites.{name!r} must list the target groups that get its Group Folder, got {groups!r}",
                              hint='e.g. "Financien" = ["financien"] (an empty list: no group yet)')
    if files.get("sites") and not files.get("libraries_owner"):
        raise ConfigError("files.sites needs files.libraries_owner", hint='the target account that writes the libraries, e.g. libraries_owner = "admin" (a Nextcloud admin for Group Folders)')
    return dict(files)


_LOCALPART = re.compile(r"^[a-z0-9._=-]+$")


def _check_matrix(workload: str, options: dict[str, Any], base_dir: Path) -> None:
    where = f"targets.{workload}"
    url = options.get("url", "")
    if not url.startswith(("https://", "http://")):
        raise ConfigError(f"{where}.url must be the homeserver's client API URL, got {url!r}", hint='e.g. url = "https://matrix.example.org"')
    if not options.get("server_name") or "/" in options["server_name"]:
        raise ConfigError(f"{where}.server_name is required: the part after ':' in user ids", hint='e.g. server_name = "example.org"')
    if "as_token" not in options:
        raise ConfigError(f"{where}.as_token is required: the application service token of the registration",
                          hint='write as_token = { file = "matrix-as-token" }, then run `migrator matrix registration`')
    options.setdefault("ghost_prefix", "teams_")
    options.setdefault("room_prefix", "teams_")
    options.setdefault("bot", "m365-migrator")
    for key in ("ghost_prefix", "room_prefix", "bot"):
        if not _LOCALPART.match(options[key]):
            raise ConfigError(f"{where}.{key} must be lower-case letters, digits or ._=- only, got {options[key]!r}", hint="Matrix user ids and aliases allow no other characters")
    if "ca_bundle" in options:
        options["ca_bundle"] = str((base_dir / options["ca_bundle"]).resolve())


def _read_overrides(path: Path) -> dict[str, dict[str, str]]:
    try:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or "upn" not in reader.fieldnames:
                raise ConfigError(f"identity overrides {path} needs a header row with an 'upn' column", hint="e.g. upn,imap_login,nextcloud_user,matrix_id")
            unknown = [f for f in reader.fieldnames if f not in ("upn", *TARGET_FIELDS)]
            if unknown:
                raise ConfigError(f"identity overrides {path} has unknown column {unknown[0]!r}", hint=f"columns: upn, {', '.join(TARGET_FIELDS)}")
            rows: dict[str, dict[str, str]] = {}
            for line, row in enumerate(reader, start=2):
                upn = (row.get("upn") or "").strip().lower()
                if not upn:
                    raise ConfigError(f"identity overrides {path}:{line} has an empty upn", hint="fill it in or delete the line")
                if upn in rows:
                    raise ConfigError(f"identity overrides {path}:{line} repeats {upn}", hint="keep one line per user")
                rows[upn] = {k: v.strip() for k, v in row.items() if k != "upn" and v and v.strip()}
            return rows
    except OSError as exc:
        raise ConfigError(f"cannot read identity overrides {path}: {exc.strerror}", hint="check identity.overrides") from None


def with_ca_bundle(config: Config, ca_bundle: Path) -> Config:
    """Trusts a private CA for the source and every network target that names no CA of its own.
    Verification itself stays on (see without_tls_verification)."""
    path = ca_bundle.expanduser().resolve()
    if not path.is_file():
        raise ConfigError(f"--ca-bundle names {path}, which is not a file", hint="give the PEM file of the private CA")
    source = dict(config.source)
    if config.source_kind == "graph":
        source.setdefault("ca_bundle", str(path))
    targets = {w: SinkConfig(s.kind, s.options if s.kind in ("directory", "memory", "maildir") else {"ca_bundle": str(path), **s.options})
               for w, s in config.targets.items()}
    return replace(config, source=source, targets=targets)


def without_tls_verification(config: Config) -> Config:
    """Every connection of this command skips certificate checks: --insecure-skip-tls-verify only."""
    return replace(config, skip_tls_verify=True)


def read_users_file(path: Path) -> list[str]:
    """UPNs from a CSV with a `upn` column, or one UPN per line; `#` starts a comment."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read users file {path}: {exc.strerror}", hint="check --users-file / batch.users_file") from None
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if lines and "upn" in [c.strip().lower() for c in lines[0].split(",")]:
        reader = csv.DictReader(lines, skipinitialspace=True)
        reader.fieldnames = [f.strip().lower() for f in reader.fieldnames or []]
        upns = [(row.get("upn") or "").strip() for row in reader]
    else:
        upns = [line.split(",")[0].strip() for line in lines]
    bad = [u for u in upns if "@" not in u]
    if bad:
        raise ConfigError(f"users file {path} holds {bad[0]!r}, which is not a UPN", hint="one user@domain per line, or a CSV with a 'upn' column")
    if not upns:
        raise ConfigError(f"users file {path} names no users", hint="add one user@domain per line")
    return list(dict.fromkeys(upns))

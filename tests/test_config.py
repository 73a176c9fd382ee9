from __future__ import annotations

import tomllib

import pytest

from migrator.config import (
    SecretRef,
    load_config,
    parse_config,
    read_users_file,
    with_ca_bundle,
)
from migrator.errors import ConfigError
from migrator.template import CONFIG_TEMPLATE


def base(**sections):
    raw = tomllib.loads(CONFIG_TEMPLATE)
    for key, value in sections.items():
        raw[key] = value
    return raw


def error_of(raw) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    return info.value


def test_the_init_template_is_a_valid_config(tmp_path):
    path = tmp_path / "migrator.toml"
    path.write_text(CONFIG_TEMPLATE)
    config = load_config(path)
    assert config.source_kind == "example" and config.department == "Finance"
    assert config.ledger_url == f"sqlite:///{tmp_path / 'migration.db'}"
    assert config.targets["mail"].options["path"] == str(tmp_path / "target" / "mail")
    assert config.run.per_mailbox == 4


@pytest.mark.parametrize(
    ("sections", "message", "hint"),
    [
        ({"run": {"concurency": 3}}, "unknown key run.concurency", "did you mean 'concurrency'?"),
        ({"targets": {"mail": {"kind": "directory"}}}, "targets.mail.path is required for a directory target", "path = \"migrated/mail\""),
        ({"run": {"concurrency": "many"}}, "run.concurrency must be an integer, got 'many'", "fix the value"),
        ({"run": {"concurrency": 0}}, "run.concurrency must be greater than 0", "fix the value"),
        ({"source": {"kind": "exchange"}}, "source.kind must be one of example, graph, got 'exchange'", 'kind = "graph"'),
        ({"source": {"kind": "graph", "tenant_id": "t", "client_id": "c", "client_secret": "hunter2"}},
         "source.client_secret is a secret and must be a reference, not a value", 'client_secret = { env = "VARIABLE" }'),
        ({"source": {"kind": "graph", "client_id": "c"}}, "source.tenant_id is required for a graph source", "app registration"),
        ({"workloads": {"enabled": ["mail", "wiki"]}}, "workloads.enabled names unknown workload 'wiki'", "choose from mail"),
        ({"targets": {"mail": {"kind": "memory"}}}, "workload 'calendar' is enabled but has no [targets.calendar] section", "add the section"),
        ({"targets": {"mail": {"kind": "ftp", "path": "x"}}}, "targets.mail.kind must be one of directory, memory", 'kind = "directory"'),
        ({"batch": {"department": "Finance", "users_file": "u.csv"}}, "batch.department and batch.users_file are both set", "choose one"),
        ({"identity": {"matrix_id": "@{first}:example.org"}}, "identity.matrix_id uses unknown placeholder {first}", "{upn}"),
        ({"sources": {}}, "unknown key sources", "did you mean 'source'?"),
    ],
)
def test_each_config_error_names_the_key_and_the_fix(sections, message, hint):
    error = error_of(base(**sections))
    assert message in str(error)
    assert hint in error.hint
    assert error.exit_code == 2


def test_a_secret_is_kept_as_a_reference_and_read_only_on_demand(monkeypatch, tmp_path):
    raw = base(source={"kind": "graph", "tenant_id": "t", "client_id": "c", "client_secret": {"env": "TEST_SECRET"}})
    config = parse_config(raw)
    ref = config.source["client_secret"]
    assert isinstance(ref, SecretRef) and "hunter2" not in repr(config)
    with pytest.raises(ConfigError, match="environment variable TEST_SECRET is not set"):
        ref.resolve()
    monkeypatch.setenv("TEST_SECRET", "hunter2")
    assert ref.resolve() == "hunter2"
    secret_file = tmp_path / "secret"
    secret_file.write_text("s3cr3t\n")
    assert SecretRef("source.client_secret", file=str(secret_file)).resolve() == "s3cr3t"


def test_invalid_toml_and_missing_file_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist") as missing:
        load_config(tmp_path / "nope.toml")
    assert "migrator init" in missing.value.hint
    bad = tmp_path / "bad.toml"
    bad.write_text("[run\nconcurrency = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_users_file_accepts_plain_lines_and_csv(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("# wave 1\nada@example.org\n\nbob@example.org\nada@example.org\n")
    assert read_users_file(plain) == ["ada@example.org", "bob@example.org"]
    table = tmp_path / "wave.csv"
    table.write_text("name, upn\nAda, ada@example.org\nBob, bob@example.org\n")
    assert read_users_file(table) == ["ada@example.org", "bob@example.org"]
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("ada\n")
    with pytest.raises(ConfigError, match="'ada', which is not a UPN"):
        read_users_file(wrong)


def test_identity_overrides_are_read_and_checked(tmp_path):
    overrides = tmp_path / "ids.csv"
    overrides.write_text("upn,matrix_id\nAda@Example.org,@ada.lovelace:example.org\n")
    (tmp_path / "migrator.toml").write_text(CONFIG_TEMPLATE.replace('# overrides = "identity-overrides.csv"', 'overrides = "ids.csv"'))
    config = load_config(tmp_path / "migrator.toml")
    assert config.identity_overrides == {"ada@example.org": {"matrix_id": "@ada.lovelace:example.org"}}
    overrides.write_text("upn,mail\nada@example.org,x\n")
    with pytest.raises(ConfigError, match="unknown column 'mail'"):
        load_config(tmp_path / "migrator.toml")


def test_a_private_ca_applies_where_no_section_names_its_own(tmp_path):
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    (tmp_path / "own.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    (tmp_path / "pw").write_text("secret")
    config = parse_config({
        "source": {"kind": "example"},
        "workloads": {"enabled": ["mail", "files", "calendar"]},
        "targets": {
            "mail": {"kind": "maildir", "path": "mail"},
            "files": {"kind": "nextcloud", "url": "https://cloud.example.org", "password": {"file": "pw"}},
            "calendar": {"kind": "caldav", "url": "https://dav.example.org", "password": {"file": "pw"}, "ca_bundle": "own.pem"},
        },
    }, base_dir=tmp_path)
    trusting = with_ca_bundle(config, tmp_path / "ca.pem")
    assert trusting.targets["files"].options["ca_bundle"] == str(tmp_path / "ca.pem")
    assert trusting.targets["calendar"].options["ca_bundle"] == str(tmp_path / "own.pem")
    assert "ca_bundle" not in trusting.targets["mail"].options
    with pytest.raises(ConfigError, match="not a file"):
        with_ca_bundle(config, tmp_path / "missing.pem")

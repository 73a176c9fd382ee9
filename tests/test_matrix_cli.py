"""`migrator matrix registration` and the [targets.chat] section, through the real entry point."""

from __future__ import annotations

import stat

import pytest
import yaml

from tests.test_cli import migrator

CHAT_TARGET = """
[source]
kind = "example"

[workloads]
enabled = ["chat"]

[targets.chat]
kind = "matrix"
url = "https://matrix.example.org"
server_name = "example.org"
as_token = {{ file = "secrets/matrix-as-token" }}
{extra}
[identity]
matrix_id = "{matrix_id}"
"""


def write(tmp_path, extra: str = "", matrix_id: str = "@{local}:example.org"):
    (tmp_path / "migrator.toml").write_text(CHAT_TARGET.format(extra=extra, matrix_id=matrix_id))


def test_registration_writes_private_tokens_once_and_a_registration_naming_them(tmp_path):
    write(tmp_path, 'ghost_prefix = "ms_"\n')
    first = migrator("matrix", "registration", "-o", "reg/registration.yaml", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    token_path, hs_path, reg_path = tmp_path / "secrets/matrix-as-token", tmp_path / "matrix-hs-token", tmp_path / "reg/registration.yaml"
    for path in (token_path, hs_path, reg_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    registration = yaml.safe_load(reg_path.read_text())
    assert registration["as_token"] == token_path.read_text().strip() and registration["hs_token"] == hs_path.read_text().strip()
    assert registration["as_token"] != registration["hs_token"] and len(registration["as_token"]) >= 40
    assert registration["rate_limited"] is False and registration["url"] is None
    assert registration["namespaces"]["users"] == [{"exclusive": True, "regex": r"@ms_.*:example\.org"}]
    assert registration["sender_localpart"] == "m365-migrator"
    assert str(reg_path) in first.stdout and "app_service_config_files" in first.stdout
    assert registration["as_token"] not in first.stdout + first.stderr
    second = migrator("matrix", "registration", "-o", "reg/registration.yaml", cwd=tmp_path)
    assert second.returncode == 0 and yaml.safe_load(reg_path.read_text()) == registration  # tokens are kept, not rolled


@pytest.mark.parametrize(("extra", "matrix_id", "message"), [
    ('ghost_prefix = "Teams "\n', "@{local}:example.org", "targets.chat.ghost_prefix must be lower-case"),
    ("", "{upn}", "identity.matrix_id must render a Matrix user id"),
    ('as_token = "plain"\n', "@{local}:example.org", None),
])
def test_bad_chat_target_settings_are_one_line_and_exit_2(tmp_path, extra, matrix_id, message):
    write(tmp_path, extra, matrix_id)
    if message is None:  # a token written as a value, not a reference
        text = (tmp_path / "migrator.toml").read_text().replace('as_token = { file = "secrets/matrix-as-token" }\n', "")
        (tmp_path / "migrator.toml").write_text(text)
        message = "targets.chat.as_token is a secret and must be a reference"
    done = migrator("matrix", "registration", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    first, hint = done.stderr.splitlines()
    assert message in first and hint.strip().startswith("hint:")


def test_registration_needs_a_matrix_chat_target(tmp_path):
    (tmp_path / "migrator.toml").write_text('[source]\nkind = "example"\n[workloads]\nenabled = ["mail"]\n[targets.mail]\nkind = "memory"\n')
    done = migrator("matrix", "registration", cwd=tmp_path)
    assert done.returncode == 2 and "no [targets.chat] of kind matrix" in done.stderr

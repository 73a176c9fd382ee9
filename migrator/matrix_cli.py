"""`migrator matrix ...`: what a homeserver needs before the chat workload can write to it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from connectors.matrix.registration import Registration, token_file, write_registration
from migrator.config import SecretRef, load_config
from migrator.errors import ConfigError

matrix_app = typer.Typer(no_args_is_help=True, help="Set up the Matrix homeserver the chat workload writes to.")
console = Console(width=None if sys.stdout.isatty() else 160, highlight=False)


def _token(ref: SecretRef) -> str:
    """A token kept in a file is created there when the file does not exist yet; one in the environment must be set."""
    return token_file(Path(ref.file)) if ref.file else ref.resolve()


@matrix_app.command("registration")
def registration(
    config: Annotated[Path, typer.Option("--config", "-c", help="Configuration file.", envvar="MIGRATOR_CONFIG")] = Path("migrator.toml"),
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the registration YAML.")] = Path("m365-migrator-registration.yaml"),
) -> None:
    """Write the application service registration for [targets.chat] and say how to install it."""
    cfg = load_config(config)
    target = cfg.targets.get("chat")
    if target is None or target.kind != "matrix":
        raise ConfigError("the config has no [targets.chat] of kind matrix", hint='add [targets.chat] with kind = "matrix", url, server_name and as_token')
    o = target.options
    hs_ref = o.get("hs_token") or SecretRef("targets.chat.hs_token", file=str(config.parent.resolve() / "matrix-hs-token"))
    reg = Registration(o["server_name"], as_token=_token(o["as_token"]), hs_token=_token(hs_ref), sender_localpart=o["bot"],
                       ghost_prefix=o["ghost_prefix"], room_prefix=o["room_prefix"])
    write_registration(reg, output)
    path = output.resolve()
    console.print(f"wrote {path} (mode 0600: it holds the as_token and hs_token)")
    console.print("install it on the homeserver:")
    console.print(f"  1. copy it where Synapse can read it and list it in homeserver.yaml:\n       app_service_config_files:\n         - {path}")
    console.print("  2. restart Synapse")
    console.print(f"imported senders will be @{reg.ghost_prefix}...:{reg.server_name} (an exclusive namespace, not rate limited); "
                  f"rooms #{reg.room_prefix}...:{reg.server_name}; the service itself writes as @{reg.sender_localpart}:{reg.server_name}")

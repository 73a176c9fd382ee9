"""Parses sandbox JSON with msgraph-sdk's own models and fails on any field the model does not know,
so a misspelt or invented property cannot hide in `additional_data`."""

from __future__ import annotations

import enum
import json
from typing import Any

from kiota_abstractions.serialization import Parsable
from kiota_serialization_json.json_parse_node_factory import JsonParseNodeFactory

# Annotations Graph itself puts on objects; the models keep them in additional_data.
ALLOWED_EXTRA = ("@odata.", "@removed", "@microsoft.graph.", "replies@odata.")
# Properties Graph documents and returns that the SDK's model lacks (checked against the v1.0 docs'
# own response examples): model class name -> property names.
DOCUMENTED_EXTRA = {"TeamworkUserIdentity": {"tenantId"}}


def parse(model: type[Parsable], payload: dict[str, Any]) -> Any:
    node = JsonParseNodeFactory().get_root_parse_node("application/json", json.dumps(payload).encode())
    return node.get_object_value(model)


def unknown_fields(obj: Any, path: str = "$") -> list[str]:
    """Paths of every property that landed in additional_data without being a Graph annotation."""
    found: list[str] = []
    if isinstance(obj, list):
        for index, entry in enumerate(obj):
            found += unknown_fields(entry, f"{path}[{index}]")
        return found
    if not hasattr(obj, "additional_data") or isinstance(obj, enum.Enum):
        return found
    for key in obj.additional_data or {}:
        if not key.startswith(ALLOWED_EXTRA) and key not in DOCUMENTED_EXTRA.get(type(obj).__name__, ()):
            found.append(f"{path}.{key}")
    for name, value in vars(obj).items():
        if name in ("additional_data", "backing_store") or value is None:
            continue
        if isinstance(value, list) or hasattr(value, "additional_data"):
            found += unknown_fields(value, f"{path}.{name}")
    return found


def assert_parses(model: type[Parsable], payload: dict[str, Any]) -> Any:
    """Parses and returns the model object; fails naming every unknown property."""
    obj = parse(model, payload)
    extra = unknown_fields(obj)
    assert not extra, f"properties {model.__name__} does not know: {extra}"
    return obj

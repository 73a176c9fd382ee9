"""What arrived different from the source, item by item: names the target refused and the mapping
made legal, and what a sink could not carry over (a share, a link, a modification time). The
copying recorded both with each item.copied event; an item copied again counts its latest copy."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from state.ledger import Ledger

RENAMED = "renamed: the target refuses the name"


def adjustments(ledger: Ledger, place: dict[int, tuple[str, str, str]], paths: dict[int, str],
                item_containers: dict[int, int], include_titles: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(one entry per adjusted item, causes with their item counts). Original and legal names are
    titles: they appear only with include_titles; the reasons always do."""
    latest: dict[int, dict[str, Any]] = {}
    for event in ledger.events_of(["item.copied"]):
        item_id = int(event.subject.removeprefix("item "))
        detail = json.loads(event.detail)
        latest[item_id] = detail  # events come in chain order: a later copy replaces an earlier one
    entries, causes = [], Counter()
    for item_id, detail in latest.items():
        container_id = item_containers.get(item_id)
        if container_id not in place or not (detail.get("notes") or detail.get("renamed")):
            continue
        dept, upn, workload = place[container_id]
        entry: dict[str, Any] = {"department": dept, "upn": upn, "workload": workload, "container_id": container_id,
                                 "container": paths.get(container_id, ""), "item_id": item_id, "notes": list(detail.get("notes") or [])}
        renamed = detail.get("renamed")
        if renamed:
            entry["renamed_because"] = list(renamed.get("why") or [])
            causes[RENAMED] += 1
            if include_titles:
                entry["renamed_from"], entry["renamed_to"] = renamed.get("from"), renamed.get("to")
        for note in entry["notes"]:
            causes[_cause(note)] += 1
        entries.append(entry)
    return entries, [{"reason": reason, "items": n} for reason, n in causes.most_common()]


def _cause(note: str) -> str:
    """Notes that differ only in whom they name share a cause: "read share with bob not created:
    ..." and "... with ann ..." both count under the text after the colon."""
    head, sep, tail = note.partition(": ")
    if sep and " with " in head:
        return head.split(" with ")[0] + " share not created: " + tail
    return note

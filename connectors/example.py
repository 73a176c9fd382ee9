"""The built-in example tenant: a small, deterministic organisation for the demo and the tests,
generated from a seed. It holds only invented people and text."""

from __future__ import annotations

import random

from connectors.memory import MemorySource
from migrator.model import Container, User

DEPARTMENTS = ("Finance", "Legal", "Communications")
FIRST = ("Anna", "Bram", "Chloë", "Daan", "Eva", "Femke", "Gijs", "Hanna", "Ivo", "Jet", "Kees", "Lotte")
LAST = ("de Vries", "Jansen", "Bakker", "Visser", "Smit", "Meijer", "Mulder", "de Boer", "Bos", "Peters")
TOPICS = ("budget 2027", "tender review", "press release", "audit follow-up", "policy draft", "team offsite")

_FOLDERS = {
    "mail": [("inbox", ("INBOX",)), ("sentitems", ("Sent",)), ("projects", ("Projects", "2026"))],
    "calendar": [("calendar", ("Calendar",))],
    "contacts": [("contacts", ("Contacts",))],
    "files": [("onedrive", ("Documents",)), ("onedrive-reports", ("Documents", "Reports"))],
    "chat": [("chat-team", ("Team chat",))],
}
_KIND = {"mail": "message", "calendar": "event", "contacts": "contact", "files": "file", "chat": "chatMessage"}


def _body(workload: str, rng: random.Random, user: User, n: int) -> bytes:
    topic = rng.choice(TOPICS)
    if workload == "mail":
        return (
            f"From: {user.display_name} <{user.upn}>\r\nTo: team@example.org\r\n"
            f"Subject: {topic} ({n})\r\nMessage-ID: <{n}.{user.upn}>\r\nDate: Mon, 2 Nov 2026 09:{n % 60:02d}:00 +0100\r\n\r\n"
            f"Notes on the {topic}.\r\n" + "Lorem ipsum dolor sit amet. " * rng.randint(1, 40) + "\r\n"
        ).encode()
    if workload == "calendar":
        return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:{n}-{user.upn}\r\nSUMMARY:{topic}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n".encode()
    if workload == "contacts":
        who = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        return f"BEGIN:VCARD\r\nVERSION:4.0\r\nUID:{n}-{user.upn}\r\nFN:{who}\r\nEND:VCARD\r\n".encode()
    if workload == "files":
        return rng.randbytes(rng.randint(200, 50_000))
    return f'{{"from": "{user.display_name}", "body": "About the {topic}"}}'.encode()


def example_source(seed: int = 7, users: int = 6, items_per_container: int = 4) -> MemorySource:
    rng = random.Random(seed)
    source = MemorySource()
    for index in range(users):
        first, last = FIRST[index % len(FIRST)], LAST[(index * 3) % len(LAST)]
        local = f"{first.lower().replace('ë', 'e')}.{last.lower().replace(' ', '')}"
        user = User(upn=f"{local}@example.org", display_name=f"{first} {last}", department=DEPARTMENTS[index % len(DEPARTMENTS)], source_id=f"u{index}")
        source.add_user(user)
        for workload, folders in _FOLDERS.items():
            for folder_id, path in folders:
                container = Container(source_id=f"{user.source_id}-{folder_id}", name=path[-1], workload=workload, path=path, role=folder_id)
                source.add_container(user.upn, container)
                for n in range(items_per_container):
                    suffix = "pdf" if workload == "files" else ""
                    name = f"{rng.choice(TOPICS).replace(' ', '-')}-{n}{'.' + suffix if suffix else ''}"
                    source.put_item(user.upn, container.source_id, f"{container.source_id}-i{n}", _body(workload, rng, user, n), kind=_KIND[workload], name=name)
        _add_problem_items(source, user, index)
    return source


def _add_problem_items(source: MemorySource, user: User, index: int) -> None:
    """Every tenant has items that cannot move; the example shows how they are reported."""
    if index == 0:
        source.put_item(user.upn, f"{user.source_id}-inbox", f"{user.source_id}-broken", b"", kind="message", name="undeliverable-report",
                        metadata={"fetch_error": "the source returned an empty MIME body"})
    if index == 1:
        source.put_item(user.upn, f"{user.source_id}-calendar", f"{user.source_id}-poll", b"poll", kind="event", name="scheduling-poll",
                        metadata={"unsupported": "scheduling polls have no CalDAV equivalent"})

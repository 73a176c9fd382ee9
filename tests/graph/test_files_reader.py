"""The files reader against the sandbox: delta enumeration and passes after changes, exact bytes,
resumed downloads, hash checks, the 200 MB file in bounded memory, and SharePoint libraries."""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from connectors.graph.files import FilesReader, _Paths, below_root
from connectors.graph.quickxor import QuickXorHash
from migrator.errors import CursorExpired, ItemError, TransientError
from migrator.model import Cursor, ItemRef, Removed, User
from migrator.sandbox import api_drive
from migrator.sandbox.content import BLOCK, Blob
from migrator.sandbox.http import DropConnection
from migrator.sandbox.quickxor import quick_xor_hash
from tests.graph.conftest import collect, run, session_for

ROOT = Path(__file__).resolve().parents[2]


class Recorder(httpx.AsyncBaseTransport):
    """Sits under the session's polite transport and keeps every request actually sent."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner, self.sent = inner, []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()

    def ranges(self) -> list[str]:
        return [r.headers["range"] for r in self.sent if "range" in r.headers]


class DroppingBlob(Blob):
    """Serves `inner`, but closes the connection once at each offset in `drops` (or at every request
    after `always` bytes), the way a flaky network cuts a long download."""

    def __init__(self, inner: Blob, drops: tuple[int, ...] = (), always: int | None = None) -> None:
        self.inner, self.size, self.pending, self.always = inner, inner.size, sorted(drops), always

    @classmethod
    def install(cls, drive, item_id: str, **cuts) -> Blob:
        """Swaps the item's content; its hash is computed first, since the sandbox hashes the blob
        itself when the item is first served. Returns the original blob."""
        drive.data.item_json(item_id)
        original = drive.data.contents[item_id]
        drive.data.contents[item_id] = cls(original, **cuts)
        return original

    def chunks(self, start: int = 0, end: int | None = None, chunk_size: int = BLOCK):
        offset = start
        for chunk in self.inner.chunks(start, end, chunk_size):
            cut = self._cut(offset, len(chunk))
            if cut is not None:
                yield chunk[: cut - offset]
                yield DropConnection()
                return
            offset += len(chunk)
            yield chunk

    def _cut(self, offset: int, length: int) -> int | None:
        if self.always is not None and offset <= self.always < offset + length or offset == self.always:
            return self.always
        if self.pending and offset <= self.pending[0] < offset + length:
            return self.pending.pop(0)
        return None


def the_user(sandbox) -> User:
    person = sandbox.tenant.users[0]
    return User(person["userPrincipalName"], person["displayName"], person["department"], person["id"])


def ground_truth(drive) -> dict[str, tuple[str, str, int | None]]:
    return {i["id"]: ("file" if "file" in i else "folder", drive.data.path_of(i["id"]), i["size"] if "file" in i else None)
            for i in drive.items.current() if "root" not in i}


def listed(changes) -> dict[str, tuple[str, str, int | None]]:
    return {c.source_id: (c.kind, c.name, c.size) for c in changes if isinstance(c, ItemRef)}


def files_of(drive, minimum: int = 0) -> list[dict]:
    return [i for i in drive.items.current() if "file" in i and i["size"] >= minimum]


def ref_for(item: dict) -> ItemRef:
    return ItemRef(item["id"], item.get("cTag", ""), "file" if "file" in item else "folder", item["name"], item.get("size"))


async def opened(sandbox, page_size: int = 200):
    """A reader over a session whose requests are recorded, and the user's OneDrive container."""
    session = session_for(sandbox)
    recorder = Recorder(session.transport.inner)
    session.transport.inner = recorder
    reader = FilesReader(session, page_size=page_size)
    containers = await collect(reader.containers(the_user(sandbox)))
    return session, recorder, reader, containers


def test_full_enumeration_equals_the_drive(sandbox):
    drive = api_drive.onedrive(sandbox.tenant, the_user(sandbox).source_id)

    async def scenario():
        session, recorder, reader, containers = await opened(sandbox, page_size=9)
        try:
            changes = await collect(reader.changes(the_user(sandbox), containers[0], None))
        finally:
            await session.close()
        return containers, changes, [r for r in recorder.sent if "/root/delta" in r.url.path]

    containers, changes, delta_requests = run(scenario())
    assert [(c.source_id, c.name, c.workload, c.path, c.role) for c in containers] == [(drive.id, "OneDrive", "files", ("OneDrive",), "onedrive")]
    expected = ground_truth(drive)
    assert listed(changes) == expected
    assert sum(kind == "file" for kind, _, _ in expected.values()) > 30 and any("/" in path for _, path, _ in expected.values())
    assert len(delta_requests) == -(-(len(expected) + 1) // 9)  # nine a page, the root included
    assert isinstance(changes[-1], Cursor) and sum(isinstance(c, Cursor) for c in changes) == 1
    assert not any(isinstance(c, Removed) for c in changes)


def test_second_pass_yields_exactly_the_changes_then_410_expires_the_cursor(sandbox):
    user = the_user(sandbox)
    drive = api_drive.onedrive(sandbox.tenant, user.source_id)
    folder = drive.data.item_by_path("Foto's")
    replaced, deleted = files_of(drive)[3], files_of(drive)[5]

    async def scenario():
        session, _, reader, containers = await opened(sandbox)
        try:
            first = await collect(reader.changes(user, containers[0], None))
            added = drive.add_file(random.Random(4), folder["id"], "Nieuw bestand.txt", b"nieuwe inhoud\n")
            drive.replace_content(replaced["id"], b"andere inhoud\n")
            drive.delete(deleted["id"])
            second = await collect(reader.changes(user, containers[0], first[-1].value))
            sandbox.tenant.delta.expire_all()
            with pytest.raises(CursorExpired):
                await collect(reader.changes(user, containers[0], second[-1].value))
            return first, added, second
        finally:
            await session.close()

    first, added, second = run(scenario())
    refs = {c.source_id: c for c in second if isinstance(c, ItemRef)}
    assert [c.source_id for c in second if isinstance(c, Removed)] == [deleted["id"]]
    assert isinstance(second[-1], Cursor) and second[-1].value != first[-1].value
    # Observed: the upload also reports its parent folder (childCount, cTag) and every ancestor up
    # to the root, which the reader skips; replacing content reports the file alone.
    assert set(refs) == {added["id"], replaced["id"], folder["id"]}
    assert (refs[added["id"]].kind, refs[added["id"]].name, refs[added["id"]].size) == ("file", "Foto's/Nieuw bestand.txt", 14)
    before = {c.source_id: c for c in first if isinstance(c, ItemRef)}
    assert refs[replaced["id"]].change_key != before[replaced["id"]].change_key and refs[replaced["id"]].size == 14
    assert refs[folder["id"]].kind == "folder"


def test_fetch_returns_exact_bytes_path_and_permissions(sandbox):
    user = the_user(sandbox)
    drive = api_drive.onedrive(sandbox.tenant, user.source_id)
    chosen = files_of(drive)[::7][:8]
    folder = drive.data.item_by_path("Gedeeld met team")

    async def scenario():
        session, _, reader, containers = await opened(sandbox)
        try:
            items = [await reader.fetch(user, containers[0], ref_for(f)) for f in chosen]
            contents = [await item.payload.read_all() for item in items]
            again = await items[0].payload.read_all()  # chunks() restarts on every call
            shared = await reader.fetch(user, containers[0], ref_for(folder))
            return items, contents, again, shared, await shared.payload.read_all()
        finally:
            await session.close()

    items, contents, again, shared, folder_bytes = run(scenario())
    for source, item, content in zip(chosen, items, contents):
        assert content == drive.data.contents[source["id"]].read_all() and item.payload.size == len(content)
        assert item.metadata["path"] == drive.data.path_of(source["id"]) and item.metadata["item"]["id"] == source["id"]
        # Only items with the `shared` facet have grants worth a request; the owner's is never a share.
        granted = [p["id"] for p in drive.data.permissions[source["id"]]] if "shared" in source else []
        assert [p["id"] for p in item.metadata["permissions"]] == granted
        assert "@microsoft.graph.downloadUrl" not in item.metadata["item"]
    assert again == contents[0]
    assert folder_bytes == b"" and shared.metadata["path"] == "Gedeeld met team"
    assert len(shared.metadata["permissions"]) == len(drive.data.permissions[folder["id"]]) >= 3


def test_dropped_download_resumes_with_range_and_checks_the_hash(sandbox):
    user = the_user(sandbox)
    drive = api_drive.onedrive(sandbox.tenant, user.source_id)
    target = files_of(drive, minimum=150_000)[0]
    original = DroppingBlob.install(drive, target["id"], drops=(40_000, 100_001))

    async def scenario():
        session, recorder, reader, containers = await opened(sandbox)
        try:
            item = await reader.fetch(user, containers[0], ref_for(target))
            return await item.payload.read_all(), recorder.ranges()
        finally:
            await session.close()

    content, ranges = run(scenario())
    assert content == original.read_all()
    assert ranges == ["bytes=40000-", "bytes=100001-"]
    served = drive.items.get(target["id"])["file"]["hashes"]["quickXorHash"]
    assert served == quick_xor_hash([content])


def test_download_that_keeps_dropping_gives_up_as_transient(sandbox):
    user = the_user(sandbox)
    drive = api_drive.onedrive(sandbox.tenant, user.source_id)
    target = files_of(drive, minimum=100_000)[0]
    DroppingBlob.install(drive, target["id"], always=70_000)

    async def scenario():
        session, recorder, reader, containers = await opened(sandbox)
        try:
            item = await reader.fetch(user, containers[0], ref_for(target))
            with pytest.raises(TransientError, match="kept failing at byte 70000"):
                await item.payload.read_all()
            return recorder.ranges()
        finally:
            await session.close()

    assert run(scenario()) == ["bytes=70000-"] * 4


def test_expired_download_url_is_renewed(sandbox, monkeypatch):
    user = the_user(sandbox)
    drive = api_drive.onedrive(sandbox.tenant, user.source_id)
    target = files_of(drive, minimum=10_000)[0]

    async def scenario():
        session, recorder, reader, containers = await opened(sandbox)
        try:
            monkeypatch.setattr(api_drive, "DOWNLOAD_LIFETIME", -60)  # the item's URL is stale on arrival
            item = await reader.fetch(user, containers[0], ref_for(target))
            monkeypatch.setattr(api_drive, "DOWNLOAD_LIFETIME", 3600)
            return await item.payload.read_all(), [r.url.path for r in recorder.sent]
        finally:
            await session.close()

    content, paths = run(scenario())
    assert content == drive.data.contents[target["id"]].read_all()
    assert paths[-3:] == [f"/download/{drive.id}/{target['id']}", f"/v1.0/drives/{drive.id}/items/{target['id']}/content",
                          f"/download/{drive.id}/{target['id']}"]


def test_declared_hash_or_size_that_does_not_match_is_an_item_error(sandbox):
    user = the_user(sandbox)
    drive = api_drive.onedrive(sandbox.tenant, user.source_id)
    bad_hash, bad_size = files_of(drive)[1], files_of(drive)[2]
    true_size = bad_size["size"]
    drive.items.get(bad_hash["id"])["file"]["hashes"]["quickXorHash"] = "AAAAAAAAAAAAAAAAAAAAAAAAAAA="
    drive.items.get(bad_size["id"])["size"] = true_size + 1
    actual = quick_xor_hash(drive.data.contents[bad_hash["id"]].chunks())

    async def scenario():
        session, _, reader, containers = await opened(sandbox)
        try:
            for source, pattern in ((bad_hash, f"expected AAAAAAAAAAAAAAAAAAAAAAAAAAA=, got {actual}"),
                                    (bad_size, f"declares {true_size + 1} bytes, the download gave {true_size}")):
                item = await reader.fetch(user, containers[0], ref_for(source))
                with pytest.raises(ItemError, match=pattern.replace("+", r"\+")):
                    await item.payload.read_all()
            with pytest.raises(ItemError, match="404"):
                await reader.fetch(user, containers[0], ItemRef("01NOSUCHITEM", "", "file"))
        finally:
            await session.close()

    run(scenario())


def test_libraries_one_per_department(sandbox):
    tenant = sandbox.tenant
    departments = list(dict.fromkeys(u["department"] for u in tenant.users))

    async def scenario():
        session = session_for(sandbox)
        try:
            return await FilesReader(session).libraries()
        finally:
            await session.close()

    found = run(scenario())
    expected = {api_drive.library(tenant, d)[1].id: d for d in departments}
    assert {c.source_id: site["displayName"] for site, c in found} == expected and len(found) == len(departments) >= 2
    assert all((c.workload, c.role, c.path) == ("files", "library", (site["displayName"], c.name)) for site, c in found)


def test_quick_xor_hash_matches_the_known_vector_and_any_split():
    vector = QuickXorHash()
    vector.update(b"hello world")
    assert vector.b64() == "aCgDG9jwBhDc4Q1yawMZAAAAAAA="
    rng = random.Random(9)
    for size in (0, 1, 159, 160, 161, 10_239, 10_240, 10_241, 123_457):
        data, digest, offset = rng.randbytes(size), QuickXorHash(), 0
        while offset < size:
            step = rng.randint(1, 30_000)
            digest.update(data[offset : offset + step])
            offset += step
        assert digest.b64() == quick_xor_hash([data]), size


def test_paths_without_parent_path_are_resolved_through_parent_ids(sandbox):
    """OneDrive for Business leaves parentReference.path out of delta answers."""
    drive = api_drive.onedrive(sandbox.tenant, the_user(sandbox).source_id)
    deep = max(files_of(drive), key=lambda i: drive.data.path_of(i["id"]).count("/"))
    bare = {**deep, "parentReference": {k: v for k, v in deep["parentReference"].items() if k != "path"}}

    async def scenario():
        session, recorder, _, _ = await opened(sandbox)
        try:
            paths = _Paths(session, drive.id)
            return await paths.of(bare), await paths.of(bare), len(recorder.sent)
        finally:
            await session.close()

    path, again, sent = run(scenario())
    assert path == again == drive.data.path_of(deep["id"]) and path.count("/") >= 4
    assert sent == 2  # the drive, then only the direct parent: its answer carries its own path, and it is kept


def test_below_root_decodes_onedrive_and_library_paths():
    assert below_root("/drive/root:") == ""
    assert below_root("/drive/root:/Foto%27s/100%25%20klaar") == "Foto's/100% klaar"
    assert below_root("/drives/b!abc/root:/Gedeelde%20documenten") == "Gedeelde documenten"


LARGE_FILE_SCRIPT = textwrap.dedent("""
    import asyncio, resource, sys
    from pathlib import Path
    from connectors.graph.files import FilesReader
    from migrator.model import ItemRef, User
    from migrator.sandbox import api_drive
    from migrator.sandbox.app import Sandbox
    from migrator.sandbox.tenant import Tenant
    from migrator.sandbox.tls import ensure_tls
    from tests.graph.conftest import collect, session_for

    def peak_mb():
        # VmHWM belongs to this process's memory map; ru_maxrss would carry the forking parent's peak.
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    async def read_largest(sandbox):
        person = sandbox.tenant.users[0]
        drive = api_drive.onedrive(sandbox.tenant, person["id"])
        big = max((i for i in drive.items.current() if "file" in i), key=lambda i: i["size"])
        session = session_for(sandbox)
        try:
            reader = FilesReader(session)
            user = User(person["userPrincipalName"], source_id=person["id"])
            container = (await collect(reader.containers(user)))[0]
            before = peak_mb()
            item = await reader.fetch(user, container, ItemRef(big["id"], "", "file", size=big["size"]))
            received = 0
            async for chunk in item.payload.chunks():  # the hash is checked when the stream ends
                received += len(chunk)
            return received, before
        finally:
            await session.close()

    with Sandbox(Tenant(seed=5, users=2, large_items=True), ensure_tls(Path(sys.argv[1]))) as sandbox:
        received, before = asyncio.run(read_largest(sandbox))
    print(received, round(before, 1), round(peak_mb(), 1))
""")


def test_the_200_mb_file_streams_in_bounded_memory(tls_files):
    done = subprocess.run([sys.executable, "-c", LARGE_FILE_SCRIPT, str(tls_files.ca_cert.parent)], cwd=ROOT,
                          capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    received, before, peak = done.stdout.split()
    print(f"200 MB file: {received} bytes read, peak RSS {peak} MB (before the download {before} MB)")
    assert int(received) == 200_000_000
    assert float(peak) < 150 and float(peak) - float(before) < 50

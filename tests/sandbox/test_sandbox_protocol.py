"""Graph's protocol behaviour in the sandbox: paging, delta with removals and 410, $batch,
pre-authenticated downloads with Range, throttling rules and injected faults."""

from __future__ import annotations

import random
import threading

import httpx
import pytest

from tests.sandbox.conftest import client_for, follow


def test_users_page_with_top_and_filter_by_department(graph, sandbox):
    everyone, pages = follow(graph, "users?$top=7")
    assert len(everyone) == len(sandbox.tenant.users) and len(pages) == -(-len(everyone) // 7)
    assert len({u["id"] for u in everyone}) == len(everyone)
    assert "department" not in everyone[0], "department is not among Graph's default user properties"
    department = sandbox.tenant.users[0]["department"]
    finance, _ = follow(graph, f"users?$filter=department eq '{department}'&$select=id,userPrincipalName,department")
    assert len(finance) == 20 and {u["department"] for u in finance} == {department}
    bad = graph.get("users?$filter=startswith(displayName,'A')")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "Request_UnsupportedQuery"


def test_max_page_size_preference_pages_a_folder(graph, sandbox):
    user = sandbox.tenant.users[1]["id"]
    everything, _ = follow(graph, f"users/{user}/mailFolders/inbox/messages?$top=100")
    paged, pages = follow(graph, f"users/{user}/mailFolders/inbox/messages/delta", headers={"Prefer": "odata.maxpagesize=3"})
    assert len(pages) == -(-len(everything) // 3) and all(len(p["value"]) <= 3 for p in pages)
    assert sorted(m["id"] for m in paged) == sorted(m["id"] for m in everything)
    assert "@odata.deltaLink" in pages[-1] and all("@odata.deltaLink" not in p for p in pages[:-1])


def test_message_delta_reports_exactly_the_changes_then_410_once_expired(fresh_graph, fresh_sandbox):
    from migrator.sandbox.api_mail import mailbox

    tenant = fresh_sandbox.tenant
    user = tenant.users[0]
    url = f"users/{user['id']}/mailFolders/inbox/messages/delta"
    first, pages = follow(fresh_graph, url)
    delta_link = pages[-1]["@odata.deltaLink"]
    nothing, pages = follow(fresh_graph, delta_link)
    assert nothing == [], "a delta right after a full sync is empty"

    box = mailbox(tenant, user["id"])
    added = box.add("inbox", random.Random(1), tenant.colleagues(user))
    read = box.update(first[0]["id"], isRead=not first[0].get("isRead"))
    box.delete(first[1]["id"])
    moved = box.move(first[2]["id"], "archive")
    changes, pages = follow(fresh_graph, pages[-1]["@odata.deltaLink"])
    removed = {c["id"] for c in changes if "@removed" in c}
    present = {c["id"] for c in changes if "@removed" not in c}
    assert removed == {first[1]["id"], first[2]["id"]}
    assert present == {added["id"], read["id"]}
    assert moved["parentFolderId"] == box.folder("archive")["id"]

    tenant.delta.expire_all()
    gone = fresh_graph.get(pages[-1]["@odata.deltaLink"])
    assert gone.status_code == 410 and gone.json()["error"]["code"] == "SyncStateNotFound"
    garbled = fresh_graph.get(url + "?$deltatoken=not-a-token")
    assert garbled.status_code == 410


def test_batch_answers_each_part_and_limits_to_20(graph, sandbox):
    users = sandbox.tenant.users
    body = {"requests": [
        {"id": "1", "method": "GET", "url": f"/users/{users[0]['id']}"},
        {"id": "2", "method": "GET", "url": f"/users/{users[1]['id']}/mailFolders/inbox"},
        {"id": "3", "method": "GET", "url": "/users/nobody@example.org"},
        {"id": "4", "method": "GET", "url": f"/users/{users[2]['id']}", "dependsOn": ["3"]},
    ]}
    answer = graph.post("$batch", json=body)
    assert answer.status_code == 200
    by_id = {r["id"]: r for r in answer.json()["responses"]}
    assert by_id["1"]["status"] == 200 and by_id["1"]["body"]["id"] == users[0]["id"]
    assert by_id["2"]["status"] == 200 and by_id["2"]["body"]["displayName"] == "Postvak IN"
    assert by_id["3"]["status"] == 404 and by_id["3"]["body"]["error"]["code"] == "Request_ResourceNotFound"
    assert by_id["4"]["status"] == 424
    too_many = graph.post("$batch", json={"requests": [{"id": str(i), "method": "GET", "url": "/users"} for i in range(21)]})
    assert too_many.status_code == 400 and "limit of 20" in too_many.json()["error"]["message"]


def test_drive_content_redirects_to_a_tokenless_url_that_serves_ranges(graph, sandbox):
    user = sandbox.tenant.users[0]["id"]
    files = [i for i in follow(graph, f"users/{user}/drive/root/delta")[0] if "file" in i and i["size"] > 1000]
    item = files[0]
    redirect = graph.get(f"users/{user}/drive/items/{item['id']}/content", follow_redirects=False)
    assert redirect.status_code == 302
    location = redirect.headers["location"]
    whole = httpx.get(location, verify=sandbox.ssl_context())
    assert whole.status_code == 200 and len(whole.content) == item["size"]
    part = httpx.get(location, headers={"Range": "bytes=100-499"}, verify=sandbox.ssl_context())
    assert part.status_code == 206 and part.content == whole.content[100:500]
    assert part.headers["content-range"] == f"bytes 100-499/{item['size']}"
    tail = httpx.get(location, headers={"Range": "bytes=-10"}, verify=sandbox.ssl_context())
    assert tail.content == whole.content[-10:]
    beyond = httpx.get(location, headers={"Range": f"bytes={item['size'] + 5}-"}, verify=sandbox.ssl_context())
    assert beyond.status_code == 416
    forged = httpx.get(location.replace("&s=", "&s=0"), verify=sandbox.ssl_context())
    assert forged.status_code == 401


def test_more_than_four_concurrent_requests_to_one_mailbox_get_429(fresh_sandbox):
    limits = fresh_sandbox.tenant.limiter
    limits.throttle.enabled = True
    limits.latency = 0.05  # so that requests overlap, as they do against a real server
    user = fresh_sandbox.tenant.users[0]["id"]
    statuses, barrier = [], threading.Barrier(12)

    def hit() -> None:
        with client_for(fresh_sandbox) as client:
            barrier.wait()
            for _ in range(3):
                response = client.get(f"users/{user}/messages?$top=50")
                statuses.append((response.status_code, response.headers.get("retry-after"), response.json().get("error", {}).get("message", "")))

    threads = [threading.Thread(target=hit) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    throttled = [s for s in statuses if s[0] == 429]
    assert throttled and all(s[1] == "1" and "MailboxConcurrency" in s[2] for s in throttled)
    assert max(limits.peak_in_flight.values()) <= 4


def test_the_per_mailbox_request_budget_and_the_teams_rate_are_enforced(fresh_sandbox):
    limits = fresh_sandbox.tenant.limiter
    limits.throttle.enabled = True
    limits.throttle.mailbox_requests, limits.throttle.mailbox_window = 5, 60
    limits.throttle.teams_messages_per_second = 3
    tenant = fresh_sandbox.tenant
    user = tenant.users[0]["id"]
    with client_for(fresh_sandbox) as client:
        codes = [client.get(f"users/{user}/mailFolders").status_code for _ in range(6)]
        assert codes == [200] * 5 + [429]
        other = tenant.users[1]["id"]
        assert client.get(f"users/{other}/mailFolders").status_code == 200, "the budget is per mailbox"
        chat = client.get(f"users/{user}/chats").json()["value"][0]["id"]
        reads = [client.get(f"chats/{chat}/messages").status_code for _ in range(4)]
        assert reads[:3] == [200, 200, 200] and reads[3] == 429
    assert limits.throttled["MailboxRequests"] == 1 and limits.throttled["TeamsMessages"] == 1


@pytest.mark.parametrize(("kind", "expected"), [("503", 503), ("504", 504)])
def test_injected_server_errors(fresh_sandbox, kind, expected):
    fresh_sandbox.tenant.limiter.faults.rate = 1.0
    fresh_sandbox.tenant.limiter.faults.kinds = (kind,)
    with client_for(fresh_sandbox) as client:
        response = client.get("users")
    assert response.status_code == expected and "error" in response.json()


def test_injected_dropped_connections(fresh_sandbox):
    with client_for(fresh_sandbox) as client:
        fresh_sandbox.tenant.limiter.faults.rate = 1.0
        fresh_sandbox.tenant.limiter.faults.kinds = ("drop",)
        with pytest.raises(httpx.TransportError):
            client.get("users")

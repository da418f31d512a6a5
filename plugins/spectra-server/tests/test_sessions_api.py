"""Runs (waiting for the result) and session routes, against a real uvicorn server."""

from __future__ import annotations

import httpx

Clients = dict[str, httpx.AsyncClient]


async def _run(client: httpx.AsyncClient, text: str, session_id: str | None = None) -> dict:
    path = "/v1/runs" if session_id is None else f"/v1/sessions/{session_id}/runs"
    response = await client.post(path, json={"input": text})
    assert response.status_code == 200, response.text
    body = response.json()
    assert response.headers["X-Session-Id"] == body["session_id"]
    assert response.headers["X-Run-Id"] == body["run_id"]
    return body


async def test_a_run_in_a_new_session_returns_its_result(clients: Clients) -> None:
    body = await _run(clients["alice"], "hello")
    assert body["status"] == "completed"
    assert body["text"] == "echo: hello"
    assert body["final_message"]["role"] == "assistant"


async def test_a_run_continues_a_session(clients: Clients) -> None:
    first = await _run(clients["alice"], "one")
    second = await _run(clients["alice"], "two", first["session_id"])
    assert second["session_id"] == first["session_id"]
    response = await clients["alice"].get(f"/v1/sessions/{first['session_id']}")
    assert response.status_code == 200
    detail = response.json()
    assert detail["tenant_id"] == "acme" and detail["user_id"] == "alice"
    texts = [
        block["text"]
        for entry in detail["active_branch"]
        if entry["type"] == "message"
        for block in entry["message"]["content"]
    ]
    assert texts == ["one", "echo: one", "two", "echo: two"]


async def test_list_pages_through_the_callers_sessions_only(clients: Clients) -> None:
    mine = {(await _run(clients["alice"], f"s{i}"))["session_id"] for i in range(3)}
    await _run(clients["bob"], "not yours")
    await _run(clients["mallory"], "not yours either")
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        response = await clients["alice"].get("/v1/sessions", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["sessions"]) <= 2
        seen += [s["id"] for s in page["sessions"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(mine)
    assert all(
        s["tenant_id"] == "acme"
        for s in (await clients["alice"].get("/v1/sessions")).json()["sessions"]
    )


async def test_list_filters_by_time(clients: Clients) -> None:
    await _run(clients["alice"], "x")
    later = (
        await clients["alice"].get(
            "/v1/sessions", params={"updated_after": "2999-01-01T00:00:00+00:00"}
        )
    ).json()
    assert later["sessions"] == []
    bad = await clients["alice"].get("/v1/sessions", params={"updated_after": "yesterday"})
    assert bad.status_code == 400
    assert bad.headers["content-type"] == "application/problem+json"
    assert "updated_after" in bad.json()["detail"]


async def test_tree_fork_and_delete(clients: Clients) -> None:
    alice = clients["alice"]
    first = await _run(alice, "one")
    sid = first["session_id"]
    await _run(alice, "two", sid)
    tree = (await alice.get(f"/v1/sessions/{sid}/tree")).json()
    assert tree["session_id"] == sid and len(tree["roots"]) == 1
    by_id = {n["entry"]["id"]: n for n in tree["nodes"]}
    assert tree["leaf_id"] in by_id
    first_answer = next(
        n["entry"]["id"]
        for n in tree["nodes"]
        if n["entry"]["type"] == "message" and n["entry"]["message"]["role"] == "assistant"
    )
    fork = await alice.post(f"/v1/sessions/{sid}/fork", json={"entry_id": first_answer})
    assert fork.status_code == 201, fork.text
    forked = fork.json()
    location = fork.request.url.join(fork.headers["Location"])  # relative: works when mounted
    assert location.path == f"/v1/sessions/{forked['id']}"
    assert forked["forked_from"] == {"session_id": sid, "entry_id": first_answer}
    assert forked["tenant_id"] == "acme" and forked["user_id"] == "alice"
    assert (
        await alice.post(f"/v1/sessions/{sid}/fork", json={"entry_id": "nope"})
    ).status_code == 404
    assert (await alice.post(f"/v1/sessions/{sid}/fork")).status_code == 201  # from the leaf
    assert (await alice.delete(f"/v1/sessions/{sid}")).status_code == 204
    assert (await alice.get(f"/v1/sessions/{sid}")).status_code == 404
    assert (await alice.get(f"/v1/sessions/{forked['id']}")).status_code == 200


async def test_another_principals_session_is_404_on_every_route(clients: Clients) -> None:
    sid = (await _run(clients["alice"], "secret"))["session_id"]
    for name in ("bob", "mallory"):  # same tenant other user; other tenant same user id
        other = clients[name]
        for response in [
            await other.get(f"/v1/sessions/{sid}"),
            await other.get(f"/v1/sessions/{sid}/tree"),
            await other.post(f"/v1/sessions/{sid}/fork", json={}),
            await other.post(f"/v1/sessions/{sid}/runs", json={"input": "hi"}),
            await other.delete(f"/v1/sessions/{sid}"),
        ]:
            assert response.status_code == 404, (name, response.request.url, response.text)
            problem = response.json()
            assert problem["error"] == "SessionNotFoundError"
            assert problem == (await other.get("/v1/sessions/s-missing")).json() | {
                "detail": problem["detail"]
            }
        listed = (await other.get("/v1/sessions")).json()["sessions"]
        assert sid not in [s["id"] for s in listed]
    assert (await clients["alice"].get(f"/v1/sessions/{sid}")).status_code == 200  # untouched

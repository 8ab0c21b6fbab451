"""The fan-in handler on a real status store (SQLite file and PostgreSQL): children counted once, one
continuation, timeouts."""

from __future__ import annotations

import threading

import pytest

from asya_common import envelope as env
from asya_common.status import open_store


@pytest.fixture()
def fanin(store_url, monkeypatch):
    monkeypatch.setenv("ASYA_STATUS_DB", store_url)
    monkeypatch.setenv("ASYA_FANIN_TIMEOUT", "30s")
    from asya_crew import fanin as module

    module._store = None
    yield module
    module._store = None


def _member(role: str, group: str, count: int, index: int | None = None, payload=None, eid="root") -> dict:
    e = env.make_envelope(["fan-in", "next-actor"], payload, envelope_id=eid)
    info = {"group": group, "role": role, "count": count}
    info.update({"index": index} if role == "child" else {"into": ["parts"]})
    e["headers"]["x-asya-fanin"] = info
    return e


def test_parent_waits_then_continues_once_with_ordered_results(fanin):
    g = "root/r1/1"
    with pytest.raises(fanin.FanInPending):
        fanin.fan_in(_member("parent", g, 3, payload={"k": 1}))
    for index in (2, 0, 2, 1, 0):  # out of order, with redeliveries
        assert fanin.fan_in(_member("child", g, 3, index, payload=f"r{index}", eid=f"root-{index + 1}")) is None
    out = fanin.fan_in(_member("parent", g, 3, payload={"k": 1}))
    assert out["payload"] == {"k": 1, "parts": ["r0", "r1", "r2"]}
    assert "x-asya-fanin" not in out["headers"]
    assert fanin._open()[0].counts(g) == (3, 3)


def test_concurrent_children_are_each_counted_once(fanin):
    g = "root/r1/2"
    threads = [threading.Thread(target=fanin.fan_in, args=(_member("child", g, 20, i % 20, payload=i % 20),))
               for i in range(60)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert fanin._open()[0].counts(g) == (20, 20)


def test_timeout_fails_the_parent_naming_the_missing_children(fanin, monkeypatch):
    g = "root/r1/3"
    fanin.fan_in(_member("child", g, 3, 1, payload="x"))
    monkeypatch.setattr(fanin.time, "time", lambda: 10 ** 10)  # long after the group's first arrival
    out = fanin.fan_in(_member("parent", g, 3, payload={}))
    assert out["route"]["next"] == ["error-end"]
    error = out["headers"][env.H_ERROR]
    assert error["type"] == "FanInTimeout" and "root-1, root-3" in error["message"] and "2 of 3" in error["message"]


def test_malformed_member_is_an_error(fanin):
    e = env.make_envelope(["fan-in"], {})
    with pytest.raises(fanin.FanInError):
        fanin.fan_in(e)


def test_tables_come_from_the_status_store_migrations(fanin, store_url):
    fanin.fan_in(_member("child", "g", 1, 0, payload=1))
    store = open_store(store_url)
    assert store.schema_version() >= 3

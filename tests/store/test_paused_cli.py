"""``asya paused list|show|resume`` against both backends (``--store``), with its errors."""

from __future__ import annotations

import asyncio
import json

import pytest

from asya_cli.main import main
from asya_common import envelope as env
from asya_common.status import PAUSED, RUNNING, open_store
from asya_common.transport import QueueSpec, TransportSettings, create_transport

SCHEMA = {"type": "object", "properties": {"label": {"type": "integer"}}, "required": ["label"]}


@pytest.fixture
def paused(store_url, tmp_path):
    store = open_store(store_url)
    e = env.make_envelope(["review", "store"], {"scan": 1})
    store.create(e)
    store.park(env.advance(env.copy_envelope(e)), {"prompt": "Which digit?", "schema": SCHEMA,
                                                   "into": ".payload.review"}, "review")
    state = tmp_path / "state"
    state.mkdir()

    async def queues():
        settings = TransportSettings(kind="sqlite", sqlite_path=str(state / "queues.sqlite3"))
        async with create_transport(settings) as transport:
            await transport.ensure_queue(QueueSpec(env.queue_name("store")))
    asyncio.run(queues())
    return store, e["id"], ["--store", store_url, "--state-dir", str(state)]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_show_resume_and_the_errors(paused, capsys, monkeypatch):
    monkeypatch.delenv("ASYA_TRANSPORT", raising=False)
    store, eid, where = paused
    code, out, _ = run(capsys, "paused", "list", *where)
    assert code == 0 and eid in out and "Which digit?" in out and "review" in out
    code, out, _ = run(capsys, "paused", "show", eid, *where)
    shown = json.loads(out)
    assert code == 0 and shown["schema"] == SCHEMA and shown["payload"] == {"scan": 1} and shown["next"] == "store"

    code, _, err = run(capsys, "paused", "show", "nope", *where)
    assert code == 2 and "no paused envelope with id 'nope'" in err
    code, _, err = run(capsys, "paused", "resume", eid, "--input", "{label: 3}", *where)
    assert code == 2 and "--input is not JSON" in err
    code, _, err = run(capsys, "paused", "resume", eid, "--input", '{"label": "three"}', *where)
    assert code == 2 and "$.label: 'three' is not of type 'integer'" in err and "still paused" in err
    assert store.get(eid)["status"] == PAUSED

    code, out, err = run(capsys, "paused", "resume", eid, "--input", '{"label": 3}', *where)
    assert code == 0, err
    assert json.loads(out) == {"id": eid, "resumed_to": "store", "payload": {"scan": 1, "review": {"label": 3}}}
    assert store.get(eid)["status"] == RUNNING
    code, _, err = run(capsys, "paused", "resume", eid, "--input", '{"label": 4}', *where)
    assert code == 2 and "already resumed" in err
    code, out, _ = run(capsys, "paused", "list", "--json", *where)
    assert out == ""
    code, out, _ = run(capsys, "paused", "list", "--all", "--json", *where)
    assert json.loads(out)["status"] == "resumed"


def test_missing_store_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ASYA_STATUS_DB", raising=False)
    code, _, err = run(capsys, "paused", "list", "--state-dir", str(tmp_path / "nowhere"))
    assert code == 2 and "no status store at" in err
    code, _, err = run(capsys, "paused", "list", "--store", "mysql://x/y")
    assert code == 2 and "unsupported status store URL mysql://" in err

"""Async test handlers: concurrency is recorded by the handler itself."""

import asyncio

state = {"now": 0, "max": 0}


async def sleepy(payload):
    state["now"] += 1
    state["max"] = max(state["max"], state["now"])
    try:
        await asyncio.sleep(payload.get("seconds", 0.5))
    finally:
        state["now"] -= 1
    return {"max_seen": state["max"]}


async def afail(payload):
    await asyncio.sleep(0)
    raise KeyError("missing")


async def aprints(payload):
    import logging

    await asyncio.sleep(0)
    print("printed", payload.get("what"))
    logging.getLogger("user.code").info("logged %s", payload.get("what"))
    return payload

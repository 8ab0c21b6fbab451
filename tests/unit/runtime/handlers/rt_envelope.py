"""Envelope-mode test handlers."""


def reroute(envelope):
    envelope["route"]["next"] = ["audit"] + envelope["route"]["next"]
    envelope["payload"] = {"rerouted": True}
    return envelope


def change_curr(envelope):
    envelope["route"]["curr"] = "elsewhere"
    return envelope


def change_prev(envelope):
    envelope["route"]["prev"] = []
    return envelope


def split(envelope):
    outs = []
    for i in range(2):
        out = dict(envelope, payload={"part": i})
        outs.append(out)
    return outs


def not_an_envelope(envelope):
    return {"payload": 1}


def gen(envelope):
    yield ("FLY", {"progress": 1})
    yield dict(envelope, payload="x")

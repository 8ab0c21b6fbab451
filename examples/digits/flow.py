"""The digits pipeline as a Flow DSL file: the routing of the hand-written `judge` actor, as plain Python.

`run_demo.py` sends envelopes along the route validate -> classify -> judge, and the judge rewrites the
rest of the route by confidence. Here the same decision is an `if` in a flow; `asya flow compile` turns
it into one generated router actor, so no judge has to be written:

    asya dev examples/digits/flow.py examples/digits/actors/{validate,classify,review,store}.yaml
    asya send --flow digits_flow --payload '{"scan_id": "s1", "pixels": [...64 numbers...]}' --wait

`digits_batch` classifies every scan of a batch in parallel and joins the predictions (fan-in).
See docs/flows.md.
"""


def digits_flow(p):
    p = validate(p)
    p = classify(p)
    if p["confidence"] >= 0.9:
        p["verdict"] = "auto"
        p = store(p)
    else:
        p["verdict"] = "review"
        p = human_review(p)
        p = store(p)
    return p


def digits_batch(p):
    predictions = [classify(scan) for scan in p["batch"]]
    p["predictions"] = predictions
    return p

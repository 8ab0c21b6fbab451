"""`make demo`: the digits pipeline end to end on the embedded SQLite queue, with no broker.

validate -> classify (scikit-learn, trained in the class handler's __init__) -> judge (rewrites the
route by confidence) -> store, or -> human-review -> store. One input is a batch (fan-out), one is
deliberately malformed (ends in error-end after its retries), one is noise (low confidence).

`human-review` is a real pause: the envelope waits in the status store for a person. The demo plays
that person through the CLI: `asya paused list`, one answer the schema rejects (the pause stays),
then `asya paused resume ID --input '{"label": N}'` for each waiting scan.

It starts `asya dev` on the actor values files in actors/, sends envelopes with `asya send --wait`,
answers the pauses, prints every final record as a table, and stops the mesh.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sklearn.datasets import load_digits

HERE = Path(__file__).resolve().parent
STATE = HERE / ".asya-demo"
ASYA = [sys.executable, "-m", "asya_cli.main"]
ROUTE = "validate,classify,judge"


def inputs() -> list[tuple[str, dict, object]]:
    """(description, payload, true label) for each envelope to send."""
    digits = load_digits()
    picks = [1790, 1791, 1792, 1793, 1794, 1795]
    cases: list[tuple[str, dict, object]] = [
        (f"scan {i}", {"scan_id": f"scan-{i}", "pixels": digits.data[i].tolist(), "true_label": int(digits.target[i])},
         int(digits.target[i])) for i in picks]
    batch = [{"scan_id": f"batch-{i}", "pixels": digits.data[i].tolist(), "true_label": int(digits.target[i])}
             for i in (1780, 1781, 1782)]
    cases.append(("batch of 3 (fan-out)", {"batch": batch}, [b["true_label"] for b in batch]))
    blend = [(a + b) / 2 for a, b in zip(digits.data[1787], digits.data[1797 - 4])]  # two digits overlaid
    cases.append(("blurred scan (two digits)", {"scan_id": "blurred", "pixels": blend, "true_label": None}, None))
    cases.append(("malformed scan (63 pixels)", {"scan_id": "broken", "pixels": [0.0] * 63}, None))
    return cases


def send(payload: dict) -> dict:
    result = subprocess.run(
        [*ASYA, "send", "--state-dir", str(STATE), "--route", ROUTE, "--payload", json.dumps(payload), "--wait",
         "--timeout", "90"], capture_output=True, text=True, cwd=HERE)
    if not result.stdout.strip():
        raise SystemExit(f"asya send failed: {result.stderr.strip()}")
    return json.loads(result.stdout)


def asya(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*ASYA, *args, "--state-dir", str(STATE)], capture_output=True, text=True, cwd=HERE)


def answer_pauses(answered: set[str], first: bool) -> bool:
    """Plays the reviewer: answers every waiting pause once (the first one is answered badly once)."""
    listing = asya("paused", "list", "--json")
    for row in map(json.loads, listing.stdout.splitlines()):
        if row["id"] in answered:
            continue
        payload = json.loads(asya("paused", "show", row["id"]).stdout)["payload"]
        print(f"  paused {row['id'][:8]} at {row['actor']}: {row['prompt']}")
        if first:
            bad = asya("paused", "resume", row["id"], "--input", '{"label": "seven"}')
            print(f"    reviewer types 'seven' -> {bad.stderr.strip()}")
            first = False
        truth = payload.get("true_label")
        answer = {"label": truth} if truth is not None else {"label": payload["label"], "note": "two digits overlaid"}
        done = asya("paused", "resume", row["id"], "--input", json.dumps(answer))
        outcome = f"resumed to {json.loads(done.stdout)['resumed_to']}" if done.returncode == 0 else done.stderr.strip()
        print(f"    reviewer answers {json.dumps(answer)} -> {outcome}")
        answered.add(row["id"])
    return first


def leaves(record: dict) -> list[dict]:
    """The record and its fan-out branches, flattened."""
    return [record, *(leaf for branch in record.get("branches", []) for leaf in leaves(branch))]


def main() -> int:
    shutil.rmtree(STATE, ignore_errors=True)
    STATE.mkdir()
    actors = sorted(str(p) for p in (HERE / "actors").glob("*.yaml"))
    with open(STATE / "dev.out", "w") as dev_out:
        mesh = subprocess.Popen([*ASYA, "dev", "--state-dir", str(STATE), *actors], cwd=HERE, stdout=dev_out,
                                stderr=subprocess.STDOUT)
    try:
        while not (STATE / "dev.json").exists():
            if mesh.poll() is not None:
                raise SystemExit(f"asya dev exited: {(STATE / 'dev.out').read_text()}")
            time.sleep(0.1)
        cases = inputs()
        started = time.monotonic()
        print(f"mesh up ({len(actors)} actors + crew on the embedded SQLite queue); sending {len(cases)} envelopes...")
        answered: set[str] = set()
        first = True
        with ThreadPoolExecutor(max_workers=len(cases)) as pool:
            futures = [pool.submit(send, payload) for _, payload, _ in cases]
            while not all(f.done() for f in futures):  # doubtful scans wait for the reviewer
                first = answer_pauses(answered, first)
                time.sleep(0.3)
            records = [f.result() for f in futures]
        elapsed = time.monotonic() - started
    finally:
        mesh.send_signal(signal.SIGINT)
        mesh.wait(timeout=60)
    print(f"\n{'input':<28} {'envelope':<12} {'status':<10} {'label':>5} {'true':>5} {'conf':>6}  route / error")
    correct = total = 0
    for (description, _, _), record in zip(cases, records):
        for leaf in leaves(record):
            result = leaf.get("result") or {}
            envelope_id = leaf["id"][:8] + leaf["id"][32:]
            if leaf["status"] == "succeeded":
                truth = next((p["true_label"] for p in _scans(cases) if p["scan_id"] == result.get("scan_id")), None)
                total += truth is not None
                correct += truth is not None and truth == result.get("label")
                route = "judge -> " + ("store" if result.get("verdict") == "auto" else
                                       f"human-review (paused; person said {result.get('label')}, model "
                                       f"{result.get('model_label')}) -> store")
                print(f"{description:<28} {envelope_id:<12} {leaf['status']:<10} {result.get('label'):>5} "
                      f"{str(truth):>5} {result.get('confidence'):>6}  {route}")
            else:
                error = leaf.get("error") or {}
                print(f"{description:<28} {envelope_id:<12} {leaf['status']:<10} {'-':>5} {'-':>5} {'-':>6}  "
                      f"{error.get('actor')}: {error.get('type')}: {error.get('message')} "
                      f"({len(error.get('attempts', []))} attempts)")
    print(f"\n{correct}/{total} labelled scans classified correctly; {len(cases)} envelopes in {elapsed:.1f}s")
    print(f"state, logs and the status store: {STATE}")
    return 0


def _scans(cases):
    for _, payload, _ in cases:
        yield from payload.get("batch", [payload])


if __name__ == "__main__":
    sys.exit(main())

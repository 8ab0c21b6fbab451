"""Asya sidecar: pulls envelopes from one actor's queue, calls the runtime, routes the results."""

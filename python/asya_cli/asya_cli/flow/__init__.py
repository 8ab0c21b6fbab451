"""The Flow DSL: a pipeline written as a plain Python function, compiled into routes and router actors.

A flow is ordinary Python over one state dict (``def review_flow(p): p = validate(p) ...``). The
compiler (:mod:`.parse` -> :mod:`.graph` nodes -> :mod:`.codegen`) turns it into the route an envelope
starts with plus one small generated router actor per decision point (a stdlib envelope-mode handler
that evaluates its condition on the payload and sets ``route.next``). Nothing runs the flow at run
time: the mesh stays choreography. See docs/flows.md.
"""

from asya_cli.flow.codegen import CompiledFlow, compile_file, compile_source, write_compiled
from asya_cli.flow.graph import FlowCompileError

__all__ = ["CompiledFlow", "FlowCompileError", "compile_file", "compile_source", "write_compiled"]

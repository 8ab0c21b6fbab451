"""Asya gateway: the HTTP front door of the mesh (submit, status, SSE stream, pause/resume, trace page)."""

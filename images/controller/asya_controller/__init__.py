"""Asya controller: a level-triggered watch loop over actor Deployments that keeps their queues and DLQs.

See docs/controller.md for what it does and why; ``python -m asya_controller`` runs it.
"""

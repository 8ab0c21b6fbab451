"""Asya crew: the terminal actors ``happy-end`` and ``error-end``."""

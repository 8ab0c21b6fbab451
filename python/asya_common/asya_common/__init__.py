"""Shared code of the Asya mesh: envelope, runtime protocol, settings, logging and transports."""

__version__ = "0.1.0"

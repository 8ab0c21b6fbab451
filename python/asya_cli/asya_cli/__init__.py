"""The ``asya`` command: a dev mesh on a laptop (``asya dev``), ``send``, ``status`` and ``dlq``."""

"""Tests of the stdlib-only runtime (images/runtime)."""

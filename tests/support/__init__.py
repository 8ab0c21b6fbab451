"""Helpers shared by the test suites: server requirements, free ports, process handling."""

"""Helpers for tests that run real processes: servers, HTTP, reference values, figures."""

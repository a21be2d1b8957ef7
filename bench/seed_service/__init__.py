"""The old Flask service, re-created from its description as a benchmark baseline."""

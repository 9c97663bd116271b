"""Conformance: credrot against the genuine qwen CLI, offline, on loopback (issue 9)."""

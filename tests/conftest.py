"""Shared fixtures of the core and cross-distribution tests."""

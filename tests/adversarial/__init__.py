"""Adversarial tests: hypothesis draws what hostile callers, servers and tools do."""

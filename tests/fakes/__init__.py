"""Fakes of hosted providers (ours), run in-process by the integration tests."""

"""Fakes that speak real wire protocols, for tests that must not reach the internet."""

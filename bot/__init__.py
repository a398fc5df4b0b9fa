"""Composition root: configuration, CLI, runners."""

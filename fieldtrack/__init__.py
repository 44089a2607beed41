"""Fieldtrack: the composition root (settings, CLI, wiring). See DESIGN.md."""

__version__ = "0.1.0"

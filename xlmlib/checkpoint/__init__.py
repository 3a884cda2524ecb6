"""Checkpoint formats: one mapping engine, one table per foreign layout, safe reading, atomic writing."""

from .mapping import CheckpointError

__all__ = ["CheckpointError"]

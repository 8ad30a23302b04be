"""Passes: graph-to-graph transformations, one per module."""

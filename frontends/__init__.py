"""Frontends: importers that turn user models into the rsnnc IR."""

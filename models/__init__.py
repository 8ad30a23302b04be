"""Example trained models for rsnnc (see models/README.md)."""

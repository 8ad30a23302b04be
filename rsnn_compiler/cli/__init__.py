"""The rsnnc command line."""

"""Test helpers shared by the executors' test suites (random fixed-point graphs and inputs)."""

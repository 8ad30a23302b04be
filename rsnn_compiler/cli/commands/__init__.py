"""One module per ``rsnnc`` command; each defines ``command`` (a click command)."""

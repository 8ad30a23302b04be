"""``rsnnc sweep``: design-space sweeps, each point a normal build plus validate, run as Ray tasks
(docs/sweep.md). Modules: ``config`` (the file format), ``point`` (one point: build, validate,
outcome), ``metrics`` (its numbers), ``run`` (keys, caching, the Ray tasks), ``table`` and
``pareto`` (the outputs)."""

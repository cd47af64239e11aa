"""Shared state (cache, rate limits, budgets, breakers): in-process by default, Redis to scale out."""

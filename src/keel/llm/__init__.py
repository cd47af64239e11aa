"""LLM layer: prompts, providers, and (later) routing, caching and resilience as provider wrappers."""

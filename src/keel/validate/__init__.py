"""Validation layer: refuse to show a wrong or unsafe answer."""

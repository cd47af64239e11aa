"""The OpenAI-compatible gateway (``keel serve``): any client changes its base_url and gets keel."""

from keel.server.app import create_app

__all__ = ["create_app"]

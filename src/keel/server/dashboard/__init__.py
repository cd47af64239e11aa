"""The gateway's dashboard at ``/dashboard``: charts of the ledger, drawn in the browser from a JSON API."""

from keel.server.dashboard.routes import mount_dashboard

__all__ = ["mount_dashboard"]

"""The production-readiness audit (``keel audit``) and the load test it uses (``keel loadtest``)."""

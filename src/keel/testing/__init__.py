"""The fakes keel is tested with, public for your own tests.

- ``FakeUpstream``: a real OpenAI-compatible HTTP server (chat completions, streaming, tools,
  structured output, embeddings) with fault injection: latency, errors, timeouts, malformed
  bodies, mid-stream failures. Also ``keel fake-upstream`` on the command line.
- ``ScriptedProvider``: a provider that answers from a script, for a ``Pipeline`` without sockets.
"""

from __future__ import annotations

from keel.testing.fake_app import FakeApp
from keel.testing.fake_knobs import Knobs
from keel.testing.fake_upstream import FakeUpstream, run
from keel.testing.scripted import ScriptedProvider

__all__ = ["FakeApp", "FakeUpstream", "Knobs", "ScriptedProvider", "run"]

"""keel: the system around an LLM call.

    Input → Context → LLM → Validation → Monitoring

Use it as a library (``Pipeline``), as an OpenAI-compatible gateway (``keel serve``) or from
the command line (``keel --help``).
"""

from keel.call import Action, Call, Completion, Result, Usage, Verdict
from keel.config import Settings, load_config
from keel.errors import KeelError
from keel.pipeline import Pipeline

__all__ = [
    "Action",
    "Call",
    "Completion",
    "KeelError",
    "Pipeline",
    "Result",
    "Settings",
    "Usage",
    "Verdict",
    "load_config",
]
__version__ = "0.1.0"

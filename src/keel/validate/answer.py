"""Changing the answer: a stage that rewrites the text makes a new ``Completion``, never edits the old one.

The pipeline compares the answer after validation with the one the model gave; a new object
tells it that a held stream must be sent as the answer now stands, not as it was streamed.
"""

from __future__ import annotations

from keel.call import Call, Completion


def with_text(completion: Completion, text: str) -> Completion:
    """A copy of ``completion`` whose first choice says ``text``."""
    choices = [dict(c) for c in completion.choices] or [{"index": 0, "finish_reason": "stop"}]
    choices[0]["message"] = {**(choices[0].get("message") or {"role": "assistant"}), "content": text}
    return Completion(
        choices, completion.model, completion.usage, completion.id, completion.created, dict(completion.extra)
    )


def rewrite(call: Call, text: str) -> None:
    """Replace the call's answer text (no-op before the model answered)."""
    if call.completion is not None:
        call.completion = with_text(call.completion, text)

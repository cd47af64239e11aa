"""How the local model reads a conversation: chat messages → one prompt string and its stop sequences.

Gemma 3 270M as packaged is a *base* model: it continues text and was never tuned on chat turns,
and its gguf carries no chat template. Two formats were tried on the same short questions
(capital of France, say hello, one sentence about cats, three primary colours, who wrote Romeo
and Juliet, 2+2, a Spanish translation), greedy decoding:

- ``chat``: Gemma's turn markup (``<start_of_turn>user ... <start_of_turn>model``). The base
  model has not learnt it: it repeated the user's text and ran to ``max_tokens`` on every question.
- ``completion`` (the default): a plain transcript, system text as a preamble, ``User:`` and
  ``Assistant:`` turns, ending on ``Assistant:``. Without an example turn it answered half the
  questions by repeating them; with one short example exchange it answered all of them briefly
  and mostly correctly ("Paris is the capital of France.", "Red, blue, and yellow.",
  "Shakespeare."), and stopped on its own. So the transcript always starts with that example
  (unless the conversation already has an assistant turn to learn from), and generation stops
  at the next ``User:``/``Assistant:`` line or a blank line, where a base model starts to ramble.

``chat`` stays available for an instruction-tuned gguf given by ``path``: its own chat template
is used when the file has one, else Gemma's turn markup.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NoReturn

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from keel.call import Message
from keel.errors import InvalidRequest

PromptFormat = Literal["completion", "chat"]

EXAMPLE_TURN = (
    "User: What is the largest planet?\nAssistant: Jupiter is the largest planet in the solar system.\n"
)
TRANSCRIPT_STOPS = ("\nUser:", "\nAssistant:", "\n\n")
GEMMA_STOPS = ("<end_of_turn>", "<start_of_turn>")
_SYSTEM_ROLES = frozenset({"system", "developer"})


@dataclass(frozen=True, slots=True)
class Prompt:
    """The text the model continues, how to tokenize it, and where its answer ends."""

    text: str
    stop: tuple[str, ...]
    add_bos: bool = True
    special: bool = False  # parse special-token markup in the text (chat formats only)


def format_prompt(
    messages: list[Message],
    style: PromptFormat,
    *,
    model: str,
    template: str | None = None,
    bos: str = "<bos>",
    eos: str = "<eos>",
) -> Prompt:
    """The prompt for ``messages`` in ``style``; InvalidRequest for what ``model`` cannot read."""
    turns = [(_role(m, model), content(m, model)) for m in messages]
    if style == "completion":
        return transcript(turns)
    if template:
        return templated(turns, template, bos=bos, eos=eos)
    return gemma_turns(turns)


def transcript(turns: list[tuple[str, str]]) -> Prompt:
    """System text as a preamble, then ``User:``/``Assistant:`` turns after one example exchange."""
    system = "\n".join(text for role, text in turns if role in _SYSTEM_ROLES and text)
    parts = [system + "\n\n"] if system else []
    if not any(role == "assistant" for role, _ in turns):
        parts.append(EXAMPLE_TURN)
    for role, text in turns:
        if role == "user":
            parts.append(f"User: {text}\n")
        elif role == "assistant":
            parts.append(f"Assistant: {text}\n")
    parts.append("Assistant:")
    return Prompt("".join(parts), TRANSCRIPT_STOPS)


def gemma_turns(turns: list[tuple[str, str]]) -> Prompt:
    """Gemma's turn markup; Gemma has no system role, so system text opens the first user turn."""
    system = "\n".join(text for role, text in turns if role in _SYSTEM_ROLES and text)
    parts: list[str] = []
    for role, text in turns:
        if role in _SYSTEM_ROLES:
            continue
        if role == "user" and system:
            text, system = f"{system}\n\n{text}", ""
        speaker = "model" if role == "assistant" else "user"
        parts.append(f"<start_of_turn>{speaker}\n{text}<end_of_turn>\n")
    if system:
        parts.append(f"<start_of_turn>user\n{system}<end_of_turn>\n")
    parts.append("<start_of_turn>model\n")
    return Prompt("".join(parts), GEMMA_STOPS, special=True)


def templated(turns: list[tuple[str, str]], template: str, *, bos: str, eos: str) -> Prompt:
    """The gguf's own Jinja chat template, rendered as llama.cpp and Hugging Face render it."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    messages = [{"role": "system" if role == "developer" else role, "content": text} for role, text in turns]
    try:
        text = env.from_string(template).render(
            messages=messages,
            add_generation_prompt=True,
            bos_token=bos,
            eos_token=eos,
            raise_exception=_template_refused,
        )
    except TemplateError as exc:
        raise InvalidRequest(f"the model's chat template cannot format these messages: {exc}") from exc
    # Templates usually start with the BOS text themselves; a second BOS would confuse the model.
    return Prompt(text, (eos,), add_bos=not text.startswith(bos), special=True)


def _template_refused(message: str) -> NoReturn:
    raise InvalidRequest(f"the model's chat template refused these messages: {message}")


def _role(message: Message, model: str) -> str:
    role = message.get("role")
    if role in ("tool", "function") or message.get("tool_calls") or message.get("function_call"):
        raise InvalidRequest(
            f"{model} does not support tools (tool calls and tool messages)", param="messages"
        )
    if role not in ("system", "developer", "user", "assistant"):
        raise InvalidRequest(f"unknown message role {role!r}", param="messages")
    return str(role)


def content(message: Message, model: str) -> str:
    """A message's text; InvalidRequest for images, audio or files, which ``model`` cannot read."""
    value: Any = message.get("content")
    if value is None or isinstance(value, str):
        return value or ""
    if not isinstance(value, list):
        raise InvalidRequest("message content must be a string or a list of parts", param="messages")
    texts: list[str] = []
    for part in value:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind != "text" or not isinstance(part.get("text"), str):
            raise InvalidRequest(
                f"{model} reads text only; got a content part of type {kind!r}", param="messages"
            )
        texts.append(part["text"])
    return "\n".join(texts)

"""How the local model reads a conversation, and how its answer is trimmed and cut at stop sequences."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keel.errors import InvalidRequest
from keel.llm.local_generate import TextFilter
from keel.llm.local_prompt import EXAMPLE_TURN, TRANSCRIPT_STOPS, format_prompt

pytestmark = pytest.mark.unit
MODEL = "gemma-3-270m"


def test_the_transcript_has_the_system_preamble_an_example_and_ends_on_the_assistant_turn() -> None:
    prompt = format_prompt(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}],
        "completion",
        model=MODEL,
    )
    assert prompt.text == "Be brief.\n\n" + EXAMPLE_TURN + "User: Hi?\nAssistant:"
    assert prompt.stop == TRANSCRIPT_STOPS
    assert prompt.add_bos
    assert not prompt.special


def test_a_conversation_with_an_assistant_turn_needs_no_example() -> None:
    messages = [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "2+2?"}]},
        {"role": "assistant", "content": "4."},
        {"role": "user", "content": "3+3?"},
    ]
    prompt = format_prompt(messages, "completion", model=MODEL)
    assert prompt.text == "Be brief.\n\nUser: 2+2?\nAssistant: 4.\nUser: 3+3?\nAssistant:"


def test_the_chat_format_without_a_template_uses_gemma_turns_with_the_system_text_first() -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}]
    prompt = format_prompt(messages, "chat", model=MODEL)
    assert prompt.text == "<start_of_turn>user\nBe brief.\n\nHi?<end_of_turn>\n<start_of_turn>model\n"
    assert prompt.special


def test_the_chat_format_renders_the_models_own_template_without_a_second_bos() -> None:
    template = (
        "{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}"
        "{% if add_generation_prompt %}[assistant]{% endif %}"
    )
    prompt = format_prompt(
        [{"role": "user", "content": "Hi"}], "chat", model=MODEL, template=template, eos="</s>"
    )
    assert prompt.text == "<bos>[user] Hi\n[assistant]"
    assert not prompt.add_bos
    assert prompt.stop == ("</s>",)


def test_a_template_that_refuses_the_messages_is_an_invalid_request() -> None:
    template = "{{ raise_exception('roles must alternate') }}"
    with pytest.raises(InvalidRequest, match="roles must alternate"):
        format_prompt([{"role": "user", "content": "Hi"}], "chat", model=MODEL, template=template)


@pytest.mark.parametrize(
    ("message", "match"),
    [
        ({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}, "reads text only"),
        ({"role": "tool", "tool_call_id": "1", "content": "42"}, "does not support tools"),
        ({"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]}, "does not support tools"),
        ({"role": "wizard", "content": "hi"}, "unknown message role"),
    ],
)
def test_what_the_model_cannot_read_is_refused_naming_it(message: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidRequest, match=match) as info:
        format_prompt([message], "completion", model=MODEL)
    assert info.value.status == 400


def reference(text: str, stops: tuple[str, ...]) -> str:
    """The answer the filter should give: trimmed, cut where the first stop sequence completes."""
    text = text.lstrip()
    for end in range(len(text) + 1):
        hits = [i for i in (text[:end].find(s) for s in stops if s) if i >= 0]
        if hits:
            return text[: min(hits)].rstrip()
    return text.rstrip()


@given(
    st.text(alphabet="ab \nUs:r", max_size=40),
    st.lists(st.integers(0, 40), max_size=8),
    st.lists(st.text(alphabet="ab \nUs:r", min_size=1, max_size=4), max_size=3),
)
def test_the_answer_is_the_same_however_the_tokens_split_it(
    text: str, cuts: list[int], stops: list[str]
) -> None:
    bounds = sorted({0, len(text), *(c for c in cuts if c <= len(text))})
    pieces = [text[a:b] for a, b in itertools.pairwise(bounds)]
    f = TextFilter(tuple(stops) + TRANSCRIPT_STOPS)
    out = "".join(f.feed(p) for p in pieces) + f.flush()
    assert out == reference(text, tuple(stops) + TRANSCRIPT_STOPS)


def test_the_filter_never_emits_the_start_of_a_stop_sequence() -> None:
    f = TextFilter(("\nUser:",))
    assert f.feed(" Paris") == "Paris"
    assert f.feed(".\nUs") == "."
    assert f.feed("er: next") == ""
    assert f.stopped
    assert f.flush() == ""

"""The near-miss guard: questions a sentence embedding confuses, but whose answers differ."""

from __future__ import annotations

import pytest

from keel.llm.cache import conflict

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("a", "b", "why"),
    [
        ("Can I return shoes after 30 days?", "Can I return shoes after 60 days?", "numbers"),
        ("Can I book a table for two?", "Can I book a table for 3?", "numbers"),
        ("Is the monthly fee $5?", "Is the monthly fee €5?", "numbers"),
        ("Can I check in at 10 am?", "Can I check in at 10 pm?", "numbers"),
        ("Are you open on Sunday?", "Are you open on Saturday?", "time"),
        ("Is the sale on this weekend?", "Is the sale on next weekend?", "time"),
        ("My package is 2 days late.", "My package is 2 weeks late.", "time"),
        ("My transfer went through.", "My transfer didn't go through.", "negation"),
        ("Is the room refundable?", "Is the room non-refundable?", "negation"),
        ("How do I enable two-factor login?", "How do I disable two-factor login?", "opposite"),
        ("How do I freeze my card?", "How do I unfreeze my card?", "opposite"),
        ("How do I turn on alerts?", "How do I turn off alerts?", "opposite"),
        ("How do I delete a message?", "How do I delete all my messages?", "quantity"),
        ("Move money from savings to checking", "Move money from checking to savings", "order"),
        ("Does the seller pay the buyer's costs?", "Does the buyer pay the seller's costs?", "order"),
        ("Is the blue sofa in stock?", "Is the grey sofa in stock?", "subject"),
        ("Does this case fit the iPhone 15?", "Does this case fit the iPhone 15 Pro?", "subject"),
    ],
)
def test_near_misses_are_refused_with_the_reason(a: str, b: str, why: str) -> None:
    assert conflict(a, b) == why
    assert conflict(b, a) == why


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Where is my parcel?", "where is my parcel"),
        ("Do you offer a student discount?", "Is there a discount for students?"),
        ("Are you open on Sunday?", "Do you open on Sundays?"),
        ("Can I book a table for 4 people?", "Do you have a table for four?"),
        ("Is shipping free on orders over $50?", "Do orders above 50 dollars ship for free?"),
        ("I can't log in to my account.", "Login isn't working for me."),
        ("How do I change my workspace name?", "Can I rename my workspace?"),
        ("Where is my order?", "Can you tell me where my order is right now?"),
    ],
)
def test_paraphrases_pass(a: str, b: str) -> None:
    assert conflict(a, b) is None

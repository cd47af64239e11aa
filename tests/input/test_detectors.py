"""The PII and secret detectors on their own: what they find, what they leave alone."""

from __future__ import annotations

import sys

import pytest

from keel.errors import ConfigError
from keel.input.pii import PIIDetector, entity_names
from keel.input.secrets import SecretDetector

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def pii() -> PIIDetector:
    return PIIDetector()


def _found(detector: PIIDetector | SecretDetector, text: str) -> list[tuple[str, str]]:
    return [(f.entity, text[f.start : f.end]) for f in detector.find(text)]


@pytest.mark.parametrize(
    ("text", "entity", "value"),
    [
        ("write to jane.roe@example.org today", "EMAIL_ADDRESS", "jane.roe@example.org"),
        ("call me on +1 (415) 555-0132 please", "PHONE_NUMBER", "+1 (415) 555-0132"),
        ("my phone: 020 7946 0958", "PHONE_NUMBER", "020 7946 0958"),
        ("card 4111 1111 1111 1111 expires soon", "CREDIT_CARD", "4111 1111 1111 1111"),
        ("IBAN DE89370400440532013000 for the refund", "IBAN_CODE", "DE89370400440532013000"),
        ("the server at 192.168.10.20 is down", "IP_ADDRESS", "192.168.10.20"),
        ("my ssn is 536-22-1234", "US_SSN", "536-22-1234"),
    ],
)
def test_each_default_entity_is_found(pii: PIIDetector, text: str, entity: str, value: str) -> None:
    assert (entity, value) in _found(pii, text)


def test_a_card_number_that_fails_the_luhn_check_is_not_a_card(pii: PIIDetector) -> None:
    assert not any(e == "CREDIT_CARD" for e, _ in _found(pii, "order 4111 1111 1111 1112 shipped"))


def test_ordinary_prose_and_numbers_are_left_alone(pii: PIIDetector) -> None:
    text = "In 2024 we shipped 1,234 parcels on 2024-05-17; version 3.11 fixed 42 bugs. Read the FAQ."
    assert _found(pii, text) == []


def test_a_bare_digit_run_needs_context_to_count_as_a_phone_number(pii: PIIDetector) -> None:
    assert _found(pii, "ticket 4155550132 was closed") == []
    assert _found(pii, "phone 4155550132") == [("PHONE_NUMBER", "4155550132")]


def test_entities_narrow_what_is_looked_for() -> None:
    only_email = PIIDetector(["email"])
    assert _found(only_email, "a@example.com or 4111 1111 1111 1111") == [("EMAIL_ADDRESS", "a@example.com")]


def test_an_unknown_entity_is_a_config_error_listing_the_supported_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown PII entity 'PASSPORT_NO'.*EMAIL_ADDRESS"):
        entity_names(["PASSPORT_NO"], where="features[0].input.pii.entities")


@pytest.mark.parametrize(
    "text",
    [
        "my key is AKIAIOSFODNN7EXAMPLE ok",
        "export OPENAI_API_KEY=sk-proj-Abc123XyZ987LmNoPqRsTuVwXyZ0123456789abcdEFGH",
        "use ghp_abcdefghijklmnopqrstuvwxyz0123456789 for the push",
        'password = "hunter2hunter2"',
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "AIzaSyA1234567890abcdefghijklmnopqrstuv",
        "sk-ant-api03-abcdefghijklmnopqrstuvwxyz012345",
        "random token Zx81Qm2LkP0vR7sT9uW3yB5nC6dE4fGhJ2kL8mN0 here",
    ],
)
def test_secrets_are_found(text: str) -> None:
    assert SecretDetector().find(text), text


def test_a_private_key_is_found_as_one_block() -> None:
    key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\nqz9/abc\n-----END RSA PRIVATE KEY-----"
    text = f"here:\n{key}\nthanks"
    assert _found(SecretDetector(), text) == [("SECRET", key)]


def test_hashes_uuids_and_prose_are_not_secrets() -> None:
    text = (
        "commit 3f786850e387550fdab836ed7e6dc881de23001b, request 123e4567-e89b-12d3-a456-426614174000, "
        "see https://docs.example.com/guides/getting-started/installation. Internationalization is hard."
    )
    assert SecretDetector().find(text) == []


def test_without_presidio_installed_pii_is_a_config_error_saying_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from keel.input import pii as module

    module._presidio.cache_clear()
    monkeypatch.setitem(sys.modules, "presidio_analyzer", None)
    monkeypatch.setitem(sys.modules, "presidio_analyzer.predefined_recognizers", None)
    try:
        with pytest.raises(ConfigError, match=r"features\[1\]\.input\.pii: .*pip install 'keel\[pii\]'"):
            PIIDetector(["EMAIL"], where="features[1].input.pii")
    finally:
        module._presidio.cache_clear()

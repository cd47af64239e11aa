"""The ledger, tracing and alerts sections of keel.yaml: shorthand accepted, mistakes named by key."""

from __future__ import annotations

import pytest

from keel.config import parse_config
from keel.errors import ConfigError

pytestmark = pytest.mark.unit

BASE = 'models: [{name: m, provider: openai, base_url: "http://x/v1"}]\nfeatures: [{name: f, model: m}]\n'


def test_a_postgresql_url_alone_is_the_ledger_and_durations_read_as_seconds() -> None:
    s = parse_config(BASE + "ledger: postgresql://keel@db:5432/keel?schema=prod\n")
    assert s.ledger.url == "postgresql://keel@db:5432/keel?schema=prod"
    s = parse_config(BASE + "ledger: {retention_days: 30, retention_check: 15m}\nalerts: {interval: 90s}\n")
    assert (s.ledger.retention_seconds, s.ledger.retention_check, s.alerts.interval) == (30 * 86400, 900, 90)
    assert s.tracing.enabled is False


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("ledger: mysql://x/y", "ledger.url: unsupported ledger URL scheme 'mysql'"),
        ("ledger: {retention_days: 0}", "ledger.retention_days: input should be greater than 0"),
        ("ledger: {flush_interval: 120}", "ledger.flush_interval: input should be less than or equal to 60"),
        ("tracing: {endpoint: grpc://x:4317}", "tracing.endpoint: expected an OTLP/HTTP URL"),
        ("alerts: {rules: [{name: r, metric: cost, warn: 1}]}", "alerts.rules[0].metric: input should be"),
        ("alerts: {interval: 5 minutes}", "alerts.interval: expected a duration such as 90s"),
        ("alerts: {webhooks: [hooks.example.com]}", "alerts.webhooks: webhook 'hooks.example.com'"),
    ],
)
def test_a_mistake_is_named_by_its_key(extra: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(BASE + extra + "\n")
    assert message in str(info.value)
    assert "\n" not in str(info.value)

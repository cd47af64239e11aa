"""Features that name registry labels: load-time checks, A/B splits, and the version the ledger records."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from keel import Call, Pipeline, Settings
from keel.errors import ConfigError
from keel.prompts.open import open_registry
from keel.testing.scripted import ScriptedProvider

pytestmark = pytest.mark.unit

MakeSettings = Callable[..., Settings]
V1 = "system: 'Version one for {{ product }}.'\nvariables: {product: {default: Acme}}\n"
V2 = "system: 'Version two for {{ product }}.'\nvariables: {product: {default: Acme}}\n"


def _config(prompt: str, extra: str = "") -> str:
    return f"""\
models: [{{name: m, provider: scripted, price: {{input_per_mtok: 1.0, output_per_mtok: 2.0}}}}]
features:
  - name: support
    model: m
    prompt: {prompt}
{extra}storage: {{path: keel.db}}
ledger: {{flush_interval: 0.05}}
"""


def _systems(settings: Settings, calls: list[Call]) -> list[str]:
    provider = ScriptedProvider("m", ["ok"])

    async def go() -> None:
        async with Pipeline(settings, providers={"m": provider}) as p:
            for call in calls:
                await p.run(call)

    asyncio.run(go())
    # The output guard may append a canary comment to the system prompt; the prompt is what comes first.
    return [re.sub(r"\s*<!--.*?-->", "", r.messages[0]["content"]) for r in provider.requests]


def _user_call(text: str = "hi", **kw: Any) -> Call:
    return Call(feature="support", messages=[{"role": "user", "content": text}], **kw)


def test_feature_serves_the_labelled_version_and_the_ledger_records_it(make_settings: MakeSettings) -> None:
    settings = make_settings(_config("support@production"), {"support": V1})
    with open_registry(settings.db_path) as reg:  # the file became v1 with `production` on first load
        reg.sync_dir(settings.resolve(settings.prompts_dir))
        reg.register("support", V2)
        reg.set_label("support@2", "production")
    assert _systems(settings, [_user_call()]) == ["Version two for Acme."]
    with sqlite3.connect(settings.db_path) as db:
        rows = db.execute("select prompt_name, prompt_version, metadata from calls").fetchall()
    assert rows[0][:2] == ("support", "2") and '"prompt_label":"production"' in rows[0][2].replace(" ", "")


def test_a_pinned_version_number_is_served(make_settings: MakeSettings) -> None:
    settings = make_settings(_config("support@1"), {"support": V1})
    assert _systems(settings, [_user_call()]) == ["Version one for Acme."]


def test_split_sends_traffic_by_weight_and_keeps_a_user_on_one_arm(make_settings: MakeSettings) -> None:
    extra = "    prompt_split: {production: 3, staging: 1}\n"
    settings = make_settings(_config("support", extra), {"support": V1})
    with open_registry(settings.db_path) as reg:
        reg.sync_dir(settings.resolve(settings.prompts_dir))
        reg.register("support", V2)
        reg.set_label("support@2", "staging")
    seen = Counter(_systems(settings, [_user_call(metadata={"user": f"u{i}"}) for i in range(400)]))
    assert seen.keys() == {"Version one for Acme.", "Version two for Acme."}
    assert 0.65 < seen["Version one for Acme."] / 400 < 0.85  # 75 % expected; 400 draws
    sticky = set(_systems(settings, [_user_call(metadata={"user": "same-user"}) for _ in range(20)]))
    assert len(sticky) == 1


def test_unknown_label_stops_keel_at_load(make_settings: MakeSettings) -> None:
    settings = make_settings(_config("support@canary"), {"support": V1})
    with pytest.raises(ConfigError, match=r"features\[0\]\.prompt: .*no label or version 'canary'"):
        Pipeline(settings, providers={"m": ScriptedProvider("m")})


def test_undeclared_feature_variable_is_a_load_time_error(make_settings: MakeSettings) -> None:
    settings = make_settings(_config("support", "    variables: {tone: warm}\n"), {"support": V1})
    with pytest.raises(ConfigError, match=r"variables tone are not declared by prompt 'support'"):
        Pipeline(settings, providers={"m": ScriptedProvider("m")})


def test_missing_required_variable_is_a_load_time_error(make_settings: MakeSettings) -> None:
    prompt = "system: 'Tier {{ tier }}'\nvariables: {tier: integer}\n"
    settings = make_settings(_config("support@production"), {"support": prompt})
    with pytest.raises(ConfigError, match=r"needs variable\(s\) tier"):
        Pipeline(settings, providers={"m": ScriptedProvider("m")})


def test_a_variable_marked_from_request_may_come_with_each_call(make_settings: MakeSettings) -> None:
    prompt = "system: 'Tier {{ tier }}'\nvariables: {tier: {type: integer, from_request: true}}\n"
    settings = make_settings(_config("support"), {"support": prompt})
    assert _systems(settings, [_user_call(variables={"tier": 3})]) == ["Tier 3"]


def test_split_and_label_together_are_refused(make_settings: MakeSettings) -> None:
    settings = make_settings(
        _config("support@production", "    prompt_split: {staging: 1}\n"), {"support": V1}
    )
    with pytest.raises(ConfigError, match="either prompt: NAME@LABEL or"):
        Pipeline(settings, providers={"m": ScriptedProvider("m")})

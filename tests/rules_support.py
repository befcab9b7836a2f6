"""Small rule packs for detector tests: one rule on www.example.org with the setting a test needs."""

from __future__ import annotations

import copy


def one_rule(setting: dict, host: str = "www.example.org", rule_id: str = "example.ai-training", **extra) -> dict:
    eyes = []
    if setting.get("json_keys"):
        eyes.append({"eye": "network", "where": "the example API", "evidence": "reconstructed"})
    if setting.get("labels") or setting.get("name_states"):
        eyes.append({"eye": "page", "where": "the example settings page", "evidence": "reconstructed"})
    rule = {
        "id": rule_id, "platform": rule_id.split(".")[0], "title": "Example trains AI on your posts",
        "summary": "Example uses your posts to train its AI models unless you switch it off.",
        "hosts": [host], "setting": {"name": "AI training", **copy.deepcopy(setting)}, "default": "on",
        "applies": [{"regions": ["*"]}], "remedy": {"steps": ["Settings", "Switch it off"]},
        "seen_via": eyes or [{"eye": "page", "where": "the example settings page", "evidence": "unverified"}],
        "sources": ["https://www.example.org/help/ai"], "last_verified": "2026-12-01", "fixtures": [],
    }
    rule.update(extra)
    return rule


def one_rule_pack(setting: dict, **kw) -> dict:
    return {"format": 1, "version": "test", "rules": [one_rule(setting, **kw)]}

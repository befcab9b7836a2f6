"""Writes each rule's `policy_documents` (issue 19) into the shipped rule pack and its schema.

    python scripts/policy_documents.py [--pack src/consentwatch/rules/pack.json] [--check]

The data lives here, in one block, so it can be applied again to a pack someone else rewrote (a rebase):
the script sets `policy_documents` on the rules named below, adds the field to schema.json if it is missing,
and bumps the pack version (".1" appended) when it applies them to a pack that had none. Idempotent: a second run changes
nothing. `--check` exits 1 when the pack or the schema is not up to date. Re-sign the pack afterwards
(docs/RULES.md, "Signing and publishing").

Every URL comes with its sources: Open Terms Archive's declarations (the URLs it fetches), or the page that
links to it. Every dated clause of a `history` says where its date and its words come from: only facts that
public versions or announcements show. A clause is written as the document words it (the engine compares
words, not punctuation or spacing).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OTA = "https://github.com/OpenTermsArchive"

# ----- BEGIN POLICY DOCUMENTS (issue 19) -----
POLICY_DOCUMENTS: dict[str, list[dict]] = {
    "linkedin.genai-training": [
        {
            "id": "privacy-policy", "kind": "privacy", "title": "Privacy Policy",
            "url": "https://www.linkedin.com/legal/privacy-policy",
            "sources": [f"{OTA}/pga-declarations/blob/main/declarations/LinkedIn.json"],
            "history": [
                {
                    "date": "2024-09-18",
                    "added": [
                        "We may use your personal data to improve, develop, and provide products and Services, "
                        "develop and train artificial intelligence (AI) models, develop, provide, and personalize "
                        "our Services, and gain insights with the help of AI, automated systems, and inferences, so "
                        "that our Services can be more relevant and useful to you and others.",
                        "You can review LinkedIn's Responsible AI principles here and learn more about our approach "
                        "to generative AI here.",
                    ],
                    "sources": [
                        f"{OTA}/vlopses-us-versions/blob/main/LinkedIn/Privacy%20Policy.md",
                        "https://www.linkedin.com/help/linkedin/answer/a1341216",
                    ],
                    "note": "The version effective 2024-09-18 carries these sentences in 'How we use your data'; the "
                            "version effective 2020-08-11 in the same archive has no AI clause. LinkedIn announced "
                            "the update that day, after switching the training setting on.",
                },
            ],
        },
        {
            "id": "eu-privacy-notice", "kind": "privacy", "title": "European Regional Privacy Notice",
            "url": "https://www.linkedin.com/legal/privacy/eu",
            "sources": [f"{OTA}/pga-versions/blob/main/LinkedIn/Privacy%20Policy.md"],
            "history": [
                {
                    "date": "2025-09-18",
                    "added": [
                        "On November 3, 2025, we are updating this notice to provide information about our reliance "
                        "on Legitimate Interests as the legal basis for training content-generating AI models used in "
                        "our products.",
                    ],
                    "sources": [
                        "https://www.helpnetsecurity.com/2025/09/18/linkedin-ai-data-privacy-policy/",
                        f"{OTA}/pga-versions/blob/main/LinkedIn/Privacy%20Policy.md",
                    ],
                    "note": "Announced on 2025-09-18 (Help Net Security); the archived notice opens with this "
                            "sentence above its 2025-02-27 effective date. Training under legitimate interests "
                            "started 2025-11-03.",
                },
            ],
        },
        {
            "id": "user-agreement", "kind": "terms", "title": "User Agreement",
            "url": "https://www.linkedin.com/legal/user-agreement",
            "sources": [f"{OTA}/pga-versions/blob/main/LinkedIn/Privacy%20Policy.md"],
        },
    ],
    "x.grok-training": [
        {
            "id": "privacy-policy", "kind": "privacy", "title": "Privacy Policy",
            "url": "https://x.com/en/privacy", "paths": ["/privacy", "/*/privacy"],
            "sources": [f"{OTA}/pga-declarations/blob/main/declarations/X.json"],
            "history": [
                {
                    "date": "2023-09-29",
                    "added": [
                        "We may use the information we collect and publicly available information to help train our "
                        "machine learning or artificial intelligence models for the purposes outlined in this policy.",
                    ],
                    "sources": [
                        "https://techcrunch.com/2023/09/01/xs-privacy-policy-confirms-it-will-use-public-data-to-train-ai-models/",
                        f"{OTA}/pga-versions/blob/main/X/Privacy%20Policy.md",
                    ],
                    "note": "Reported 2023-09-01 for the policy taking effect 2023-09-29 (section 2.1); the earlier "
                            "Twitter policy in the same archive has no AI clause.",
                },
                {
                    "date": "2024-11-15",
                    "added": [
                        "If you do not opt out, in some instances the recipients of the information may use it for "
                        "their own independent purposes in addition to those stated in X's Privacy Policy, "
                        "including, for example, to train their artificial intelligence models, whether generative "
                        "or otherwise.",
                    ],
                    "sources": [
                        f"{OTA}/pga-versions/blob/main/X/Privacy%20Policy.md",
                    ],
                    "note": "'Third-party collaborators' in section 3.2 of the policy effective 2024-11-15 (the "
                            "sentence before it, on sharing with third parties, says nothing of AI).",
                },
            ],
        },
        {
            "id": "terms-of-service", "kind": "terms", "title": "Terms of Service",
            "url": "https://x.com/en/tos", "paths": ["/tos", "/*/tos"],
            "sources": [f"{OTA}/pga-declarations/blob/main/declarations/X.json"],
        },
    ],
    "meta.ai-training": [
        {
            "id": "facebook-privacy-policy", "kind": "privacy", "title": "Facebook Privacy Policy",
            "url": "https://www.facebook.com/privacy/policy", "hosts": ["facebook.com", "m.facebook.com"],
            "paths": ["/privacy/policy", "/privacy/policy/printable"],
            "sources": [f"{OTA}/pga-declarations/blob/main/declarations/Facebook.json"],
        },
        {
            "id": "facebook-terms", "kind": "terms", "title": "Facebook Terms of Service",
            "url": "https://www.facebook.com/legal/terms", "hosts": ["facebook.com", "m.facebook.com"],
            "paths": ["/legal/terms", "/legal/terms/plain_text_terms"],
            "sources": [f"{OTA}/pga-declarations/blob/main/declarations/Facebook.json"],
        },
        {
            "id": "threads-privacy-policy", "kind": "privacy", "title": "Threads Privacy Policy",
            "url": "https://help.instagram.com/515230437301944",
            "sources": [f"{OTA}/pga-declarations/blob/main/declarations/Threads.json"],
        },
        {
            "id": "threads-terms", "kind": "terms", "title": "Threads Terms of Use",
            "url": "https://help.instagram.com/769983657850450",
            "sources": [f"{OTA}/pga-declarations/blob/main/declarations/Threads.json"],
        },
    ],
    "anthropic.claude-training": [
        {
            "id": "privacy-policy", "kind": "privacy", "title": "Privacy Policy",
            "url": "https://www.anthropic.com/legal/privacy",
            "sources": [f"{OTA}/genai-eu-declarations/blob/main/declarations/Claude.ai.json"],
        },
        {
            "id": "consumer-terms", "kind": "terms", "title": "Consumer Terms",
            "url": "https://www.anthropic.com/legal/consumer-terms",
            "sources": [f"{OTA}/genai-eu-declarations/blob/main/declarations/Claude.ai.json"],
        },
    ],
    "openai.improve-model": [
        {
            "id": "privacy-policy", "kind": "privacy", "title": "Privacy Policy",
            "url": "https://openai.com/policies/eu-privacy-policy/",
            "paths": ["/policies/eu-privacy-policy", "/policies/privacy-policy", "/policies/row-privacy-policy"],
            "sources": [f"{OTA}/genai-eu-declarations/blob/main/declarations/ChatGPT.json"],
        },
        {
            "id": "terms-of-use", "kind": "terms", "title": "Terms of Use",
            "url": "https://openai.com/policies/eu-terms-of-use/",
            "paths": ["/policies/eu-terms-of-use", "/policies/terms-of-use", "/policies/row-terms-of-use"],
            "sources": [f"{OTA}/genai-eu-declarations/blob/main/declarations/ChatGPT.json"],
        },
    ],
    "pinterest.canvas-training": [
        {
            "id": "privacy-policy", "kind": "privacy", "title": "Privacy Policy",
            "url": "https://policy.pinterest.com/en-gb/privacy-policy", "paths": ["/privacy-policy", "/*/privacy-policy"],
            "sources": [f"{OTA}/pga-declarations/blob/main/declarations/Pinterest.json"],
        },
        {
            "id": "terms-of-service", "kind": "terms", "title": "Terms of Service",
            "url": "https://policy.pinterest.com/en-gb/terms-of-service",
            "paths": ["/terms-of-service", "/*/terms-of-service"],
            "sources": [f"{OTA}/pga-declarations/blob/main/declarations/Pinterest.json"],
        },
    ],
    "tumblr.third-party-sharing": [
        {
            "id": "privacy-policy", "kind": "privacy", "title": "Privacy Policy",
            "url": "https://www.tumblr.com/privacy/en", "hosts": ["tumblr.com"], "paths": ["/privacy", "/privacy/*"],
            "sources": [f"{OTA}/pga-declarations/blob/main/declarations/Tumblr.json"],
        },
        {
            "id": "terms-of-service", "kind": "terms", "title": "Terms of Service",
            "url": "https://www.tumblr.com/policy/en/terms-of-service", "hosts": ["tumblr.com"],
            "paths": ["/policy/*/terms-of-service"],
            "sources": [f"{OTA}/pga-declarations/blob/main/declarations/Tumblr.json"],
        },
    ],
    "quora.llm-training": [
        {
            "id": "privacy-policy", "kind": "privacy", "title": "Privacy Policy",
            "url": "https://www.quora.com/about/privacy", "hosts": ["quora.com"],
            "sources": [f"{OTA}/pga-declarations/blob/main/declarations/Quora.json"],
        },
        {
            "id": "terms-of-service", "kind": "terms", "title": "Terms of Service",
            "url": "https://www.quora.com/about/tos", "hosts": ["quora.com"],
            "sources": [f"{OTA}/pga-declarations/blob/main/declarations/Quora.json"],
        },
    ],
    "grok.improve-the-model": [
        {
            "id": "privacy-policy", "kind": "privacy", "title": "Privacy Policy",
            "url": "https://x.ai/legal/privacy-policy",
            "sources": [f"{OTA}/genai-eu-declarations/blob/main/declarations/Grok.json"],
        },
        {
            "id": "terms-of-service", "kind": "terms", "title": "Terms of Service",
            "url": "https://x.ai/legal/terms-of-service",
            "sources": [f"{OTA}/genai-eu-declarations/blob/main/declarations/Grok.json"],
        },
    ],
    "perplexity.ai-data-retention": [
        {
            "id": "privacy-policy", "kind": "privacy", "title": "Privacy Policy",
            "url": "https://www.perplexity.ai/hub/legal/privacy-policy", "hosts": ["perplexity.ai"],
            "sources": [f"{OTA}/genai-eu-declarations/blob/main/declarations/Perplexity.json"],
        },
        {
            "id": "terms-of-service", "kind": "terms", "title": "Terms of Service",
            "url": "https://www.perplexity.ai/hub/legal/terms-of-service", "hosts": ["perplexity.ai"],
            "sources": [f"{OTA}/genai-eu-declarations/blob/main/declarations/Perplexity.json"],
        },
    ],
    "reddit.ai-licensing": [
        {
            "id": "privacy-policy", "kind": "privacy", "title": "Privacy Policy",
            "url": "https://www.redditinc.com/policies/privacy-policy", "hosts": ["www.reddit.com"],
            "sources": [f"{OTA}/pga-declarations/blob/main/declarations/Reddit.json"],
        },
        {
            "id": "user-agreement", "kind": "terms", "title": "User Agreement",
            "url": "https://www.redditinc.com/policies/user-agreement", "hosts": ["www.reddit.com"],
            "sources": [f"{OTA}/pga-declarations/blob/main/declarations/Reddit.json"],
        },
    ],
}

SCHEMA_DEFS = {
    "policy_document": {
        "type": "object",
        "additionalProperties": False,
        "required": ["id", "kind", "url", "sources"],
        "description": "A privacy policy or terms document of the platform. When a page of it passes either eye, "
                       "its AI-relevant sentences are kept and compared with the last version this install saw.",
        "properties": {
            "id": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,62}$"},
            "kind": {"enum": ["privacy", "terms"]},
            "title": {"type": "string", "minLength": 3, "maxLength": 120},
            "url": {"type": "string", "pattern": "^https://[a-z0-9.-]+/[^?#\\s]*$",
                    "description": "Where the document is read (no query string); its host must be a rule host "
                                   "for consentwatch to see it."},
            "hosts": {"type": "array", "uniqueItems": True, "items": {"$ref": "#/$defs/host"},
                      "description": "Other hosts that serve the same document (the URL's host always does)."},
            "paths": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/path_glob"},
                      "description": "Path globs of the document on its hosts (whole path; default: the URL's path)."},
            "sources": {"type": "array", "minItems": 1, "items": {"type": "string", "pattern": "^https?://"}},
            "history": {
                "type": "array",
                "description": "Dated changes of the document's AI clauses that public versions show.",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["date", "sources"],
                    "anyOf": [{"required": ["added"]}, {"required": ["removed"]}],
                    "properties": {
                        "date": {"$ref": "#/$defs/date"},
                        "added": {"type": "array", "items": {"$ref": "#/$defs/clause"}},
                        "removed": {"type": "array", "items": {"$ref": "#/$defs/clause"}},
                        "sources": {"type": "array", "minItems": 1, "items": {"type": "string", "pattern": "^https?://"}},
                        "note": {"type": "string"},
                    },
                },
            },
        },
    },
    "clause": {"type": "string", "minLength": 12, "maxLength": 1200},
}
SCHEMA_PROPERTY = {
    "type": "array",
    "items": {"$ref": "#/$defs/policy_document"},
    "description": "The platform's privacy policy and terms (issue 19): what consentwatch compares over time.",
}
# ----- END POLICY DOCUMENTS -----


def apply(pack: dict, schema: dict) -> tuple[dict, dict, list[str]]:
    """(pack, schema, what changed). Inputs are not modified."""
    pack_in = pack
    pack = json.loads(json.dumps(pack))
    schema = json.loads(json.dumps(schema))
    changed: list[str] = []
    by_id = {r["id"]: r for r in pack["rules"]}
    for rule_id, docs in POLICY_DOCUMENTS.items():
        rule = by_id.get(rule_id)
        if rule is None:
            changed.append(f"{rule_id}: no such rule in the pack (skipped)")
            continue
        if rule.get("policy_documents") != docs:
            rule["policy_documents"] = docs
            changed.append(f"{rule_id}: policy_documents")
    defs = schema.setdefault("$defs", {})
    for name, value in SCHEMA_DEFS.items():
        if defs.get(name) != value:
            defs[name] = value
            changed.append(f"schema: $defs/{name}")
    props = defs["rule"]["properties"]
    if props.get("policy_documents") != SCHEMA_PROPERTY:
        props["policy_documents"] = SCHEMA_PROPERTY
        changed.append("schema: rule/policy_documents")
    fresh = not any(r.get("policy_documents") for r in pack_in["rules"])
    if fresh and any(c.endswith(": policy_documents") for c in changed):
        pack["version"] = f"{pack['version']}.1"  # a pack that had none: installs refresh to it
    return pack, schema, changed


def dump(data: dict) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"  # as `rules export` writes packs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pack", type=Path, default=ROOT / "src/consentwatch/rules/pack.json")
    ap.add_argument("--check", action="store_true", help="exit 1 when the pack or schema is not up to date")
    args = ap.parse_args(argv)
    schema_path = args.pack.with_name("schema.json")
    pack, schema = json.loads(args.pack.read_text("utf-8")), json.loads(schema_path.read_text("utf-8"))
    new_pack, new_schema, changed = apply(pack, schema)
    real = [c for c in changed if "skipped" not in c]
    for line in changed:
        print(line)
    if args.check:
        return 1 if real else 0
    if real:
        args.pack.write_text(dump(new_pack), "utf-8")
        schema_path.write_text(dump(new_schema), "utf-8")
        print(f"wrote {args.pack} (version {new_pack['version']}) and {schema_path}; now re-sign the pack")
    else:
        print("up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())

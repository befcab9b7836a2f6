"""Rules as data: the JSON Schema, the rule model, the shipped pack and the TinyDB rule store."""

from .model import Rule, RuleSet, PackError, load_pack, shipped_pack, validate_pack

__all__ = ["Rule", "RuleSet", "PackError", "load_pack", "shipped_pack", "validate_pack"]

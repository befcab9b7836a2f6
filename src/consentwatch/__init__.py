"""consentwatch: warns you when a platform you use trains AI on your data by default."""

__version__ = "0.1.0"

# The rule-format features this engine understands. A rule with a higher `min_engine`
# is skipped with a note, so an old install keeps working with a newer pack.
# 2: JSON keys scoped to endpoints (paths, methods, within, only_if), request-side keys, choices, name_states.
ENGINE_VERSION = 2

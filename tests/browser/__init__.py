"""Browser tests for the extension (a package so its conftest never shadows tests/conftest.py)."""

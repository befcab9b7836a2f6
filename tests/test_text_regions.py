import datetime as dt

import pytest

from consentwatch.regions import RegionError, applies, normalize_region
from consentwatch.text import effective_date, norm

LINKEDIN_APPLIES = [
    {"regions": ["*"], "except": ["EU", "EEA", "CH", "GB"], "from": "2024-09-18"},
    {"regions": ["EU", "EEA", "CH", "GB", "CA", "HK"], "from": "2025-11-03"},
]


@pytest.mark.parametrize("text,iso", [
    ("On November 3, 2025, we are updating this notice", "2025-11-03"),
    ("These terms take effect 28 September 2025.", "2025-09-28"),
    ("Effective from 2025-11-03 we will", "2025-11-03"),
    ("Posted Jan 2, 2024. Changes take effect on Nov. 20th, 2024", "2024-11-20"),
    ("starting 3rd of November, 2025", "2025-11-03"),
    ("We updated our policy.", None),
    ("On February 30, 2025 nothing happens", None),
])
def test_effective_date(text, iso):
    assert effective_date(text) == iso


def test_norm_plain_quotes_and_spaces():
    assert norm("LinkedIn\u2019s  \n Data\u00a0for AI") == "linkedin's data for ai"


@pytest.mark.parametrize("given,expected", [("de", "DE"), ("uk", "GB"), ("EU", "EU"), ("", None), (None, None),
                                            ("eea", "EEA"), (" us ", "US"), ("ch", "CH"), ("el", "GR")])
def test_normalize_region(given, expected):
    assert normalize_region(given) == expected


@pytest.mark.parametrize("bad", ["Germany", "E1", "123", "ZZ", "XX", "QQ", "AA", "Ü1", "EUR"])
def test_bad_region_is_a_clear_error(bad):
    with pytest.raises(RegionError, match="ISO country code"):
        normalize_region(bad)


@pytest.mark.parametrize("region,date,expected", [
    ("US", "2024-10-01", True),
    ("DE", "2024-10-01", False),   # EU excluded in 2024
    ("EU", "2025-01-01", False),
    ("DE", "2025-11-04", True),    # included from 2025-11-03
    ("GB", "2025-11-03", True),
    ("CH", "2025-06-01", False),
    ("US", "2024-01-01", False),   # before the setting existed
    (None, "2024-10-01", True),    # no region: warn rather than miss
])
def test_linkedin_regions(region, date, expected):
    assert applies(LINKEDIN_APPLIES, region, dt.date.fromisoformat(date)) is expected

"""FreezeStartupObjects: once the proxy runs, the start-up objects are out of the garbage collector's way."""

import gc

import pytest
from mitmproxy.test import taddons

from consentwatch.assembly import default_addons
from consentwatch.gc_freeze import FreezeStartupObjects


@pytest.fixture(autouse=True)
def unfrozen():
    gc.unfreeze()
    yield
    gc.unfreeze()


class Cycle:
    def __init__(self):
        self.me = self


def test_running_freezes_what_lives_and_collects_what_does_not():
    f = FreezeStartupObjects()
    with taddons.context(f) as tctx:
        tctx.configure(f)
        kept = {"rules": list(range(10))}
        Cycle()  # garbage from start-up: collected first, not frozen for ever
        assert gc.get_freeze_count() == 0
        f.running()
        assert gc.get_freeze_count() > 0
        assert not any(isinstance(o, Cycle) for o in gc.get_objects())  # tracked, not frozen: collected
        assert not any(o is kept for o in gc.get_objects()) and kept["rules"][9] == 9  # alive, frozen (not listed)
        later = Cycle()
        assert any(o is later for o in gc.get_objects())  # what comes later is collected as before


def test_the_option_turns_it_off():
    f = FreezeStartupObjects()
    with taddons.context(f) as tctx:
        tctx.configure(f, consentwatch_gc_freeze=False)
        f.running()
        assert gc.get_freeze_count() == 0


def test_it_is_the_last_addon_so_it_freezes_what_the_others_built():
    assert isinstance(default_addons()[-1], FreezeStartupObjects)

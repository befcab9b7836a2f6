"""Where consentwatch's addons are put together, like mitmproxy's `default_addons()`: nothing else builds them.

`consentwatch run` (run.py) and the `mitmdump -s` script (addon/consentwatch_addon.py) both start here, so
they run the same addons, wired the same way.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import mitmproxy.addons  # noqa: F401 - with the proxy's layers, registers every hook mitmproxy has
import mitmproxy.proxy.layers  # noqa: F401
from mitmproxy import exceptions, hooks
from mitmproxy.addonmanager import safecall

from .addon import ConsentWatch
from .api.server import ApiServer
from .logs import LegacyLogGate
from .capture.record import CaptureRecorder
from .gc_freeze import FreezeStartupObjects
from .rules_reloader import RulesReloader
from .selftest import SelfTest, TlsFailures


def front_addons() -> list:
    """What must see a flow before mitmproxy's own addons do: the self-test page, which server replay with
    `server_replay_extra=kill` would otherwise refuse. `consentwatch run` adds these first; a `-s` script's
    addons always come after mitmproxy's, so the script adds them with the rest."""
    return [SelfTest()]


def default_addons() -> list:
    """Detection, the rules reloader beside it, the count of refused TLS handshakes, the API (which reads
    detection's pipeline, hears its events, reports the count, and hands the page eye's regions to detection's
    worker process), the recorder behind `consentwatch capture` (idle unless asked), the gate that spares
    every log line mitmproxy's deprecated `add_log` event while no addon listens to it, and the start-up objects
    taken out of the garbage collector's way once everything runs."""
    detection = ConsentWatch()
    failures = TlsFailures()
    api = ApiServer(lambda: detection.watch, tls_failures=failures.recent, get_worker=lambda: detection.offload)
    detection.listeners.append(api.hub.publish)
    return [detection, RulesReloader(detection), api, failures, CaptureRecorder(lambda: detection.watch),
            LegacyLogGate(), FreezeStartupObjects()]  # (last: it freezes what the others' running() built)


class AddonGroup:
    """Several addons as one entry in mitmproxy's addon chain.

    mitmproxy asks every addon in its chain for every hook of every event, whether the addon has it or
    not, through a context manager, a coroutine and two generators: ~3 µs per addon and event on a 2-core
    machine, and a flow raises ~8.5 events. Under `mitmdump -s` it also walks script -> module -> each
    addon on every event. Behind one object that has only the hooks some part has, each hook goes straight
    to the parts that have it, in their order, each part's call guarded as mitmproxy guards an addon's
    (an error is logged and the next part still runs; OptionsError and AddonHalt go through)."""

    name = "consentwatch_addons"

    def __init__(self, *parts: Any, face: dict | None = None):
        self.parts = parts
        # `face`: another namespace that gets the same hooks, kept up to date by rewire() (the script's module:
        # see in_script()). mitmproxy then finds them there and never walks on to the group.
        self.face = face
        for part in parts:
            if hasattr(part, "hooks_changed"):  # a part whose hooks come and go tells the group when they do
                part.hooks_changed = self.rewire
        self.rewire()

    def rewire(self) -> None:
        """Give each hook the parts that have it now. A part may switch hooks off while it needs none of them
        (`hooks_off`, e.g. the capture recorder's response hook while no capture runs): the other parts' hook
        is then called with nothing in between. Runs on the event loop, between two events."""
        for hook in hooks.all_hooks:
            handlers = [h for part in self.parts
                        if hook not in getattr(part, "hooks_off", ()) and callable(h := getattr(part, hook, None))]
            handler = _each(handlers) if handlers else None
            for namespace in (self.__dict__,) if self.face is None else (self.__dict__, self.face):
                if handler is not None:
                    namespace[hook] = handler
                else:
                    namespace.pop(hook, None)

    def get(self, name: str) -> Any:
        """A part by mitmproxy's name for it (its class name in lower case), like `master.addons.get`."""
        return next((p for p in self.parts if getattr(p, "name", type(p).__name__.lower()) == name), None)


def _each(handlers: list[Callable]) -> Callable:
    # Each part's call is guarded as mitmproxy's safecall() guards an addon's, but without entering that context
    # manager on every call (a generator and two of its steps, ~1.5 us, for every flow): a try costs nothing until
    # something is raised, and then safecall itself logs the error, exactly as it would have.
    if len(handlers) == 1:
        return handlers[0]  # mitmproxy calls it as the part's own method, guarded by its own safecall
    if any(inspect.iscoroutinefunction(h) for h in handlers):
        async def each_async(*args: Any) -> None:
            for handler in handlers:
                try:
                    result = handler(*args)
                    if inspect.isawaitable(result):
                        await result
                except _PASS_THROUGH:
                    raise
                except Exception:  # noqa: BLE001 - logged by mitmproxy's own guard, the next part still runs
                    _report()
        return each_async

    def each(*args: Any) -> None:
        for handler in handlers:
            try:
                handler(*args)
            except _PASS_THROUGH:
                raise
            except Exception:  # noqa: BLE001 - logged by mitmproxy's own guard, the next part still runs
                _report()
    return each


_PASS_THROUGH = (exceptions.AddonHalt, exceptions.OptionsError)


def _report() -> None:
    """Log the exception being handled as mitmproxy logs an addon's ("Addon error: ...", with its traceback)."""
    with safecall():
        raise


def in_script(namespace: dict) -> AddonGroup:
    """Make a `mitmdump -s` script's module (its globals, `namespace`) consentwatch's entry in mitmproxy's chain:
    the front and the default addons, in that order, as one group whose hooks are the module's own.

    mitmproxy walks script -> module -> each addon in the module's `addons` on every event of every flow, with a
    `getattr` and a `hasattr` at each step. With the hooks on the module and no `addons` list, the walk stops at
    the module: ~0.4 % of the instructions of an unmatched request (bench/PROFILE.md). The module also answers to
    the group's name and `get()`, as the group does under `consentwatch run`."""
    group = AddonGroup(*front_addons(), *default_addons(), face=namespace)
    namespace["name"] = AddonGroup.name
    namespace["get"] = group.get
    return group

"""The rules-reloader addon: picks up a changed rules.json while running, without a restart.

`consentwatch rules import` replaces rules.json in one atomic write. Every couple of seconds this addon
compares the file's stamp with the one it last read; when it changed, it reads the pack off the event loop
(`RuleStore.reload()`, which never writes) and hands it to the detection addon. A file that holds no usable
pack is said once, and the rules in force stay.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from .rules.model import RuleSet
from .pipeline import Watch

log = logging.getLogger(__name__)

RELOAD_EVERY = 2.0  # seconds between checks of rules.json


class RulesTarget(Protocol):
    """What the reloader needs of the detection addon: the pipeline in use, and a way to put rules in force."""

    watch: Watch | None

    def set_rules(self, rules: RuleSet) -> None: ...


class RulesReloader:
    def __init__(self, target: RulesTarget, every: float = RELOAD_EVERY) -> None:
        self.target = target
        self.every = every  # 0: no timer (tests call check() themselves)
        self._task: asyncio.Task | None = None
        self._watch: Watch | None = None  # the pipeline whose rules.json `_stamp` describes
        self._stamp: tuple | None = None

    def running(self) -> None:
        if self.every and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="consentwatch-rules")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            try:
                await self.check()
            except Exception as e:  # noqa: BLE001 - keep the rules in force, try again later
                log.error("reloading the rules failed (%s); keeping the rules in force", e)

    async def check(self) -> bool:
        """Reload the rules if rules.json changed since it was last read. True when new rules are in force."""
        watch = self.target.watch
        if watch is None:
            return False
        if watch is not self._watch:  # a new data dir: its rules were just loaded
            self._watch, self._stamp = watch, watch.rules_stamp
        before = watch.rule_store.stamp()
        if before == self._stamp:
            return False
        self._stamp = before
        rules = await asyncio.get_running_loop().run_in_executor(None, watch.rule_store.reload)
        # If the file changed again while we read it, the next check reads it again.
        if watch is not self.target.watch:
            return False
        old = watch.rules
        self.target.set_rules(rules)
        log.info("rules reloaded: pack %s, %d rules for %d hosts (was pack %s, %d rules)",
                 rules.version, len(rules), len(rules.host_patterns()), old.version, len(old))
        return True

    def done(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

"""The `flask dev` supervisor: runs each component, restarting any that exits, with backoff."""

from __future__ import annotations

import logging
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Mapping

log = logging.getLogger("lastmile.dev")


class Supervisor:
    """Keep a set of named commands running: one that exits is started again after a delay.

    The delay doubles from `first_delay` to `cap` seconds while a command keeps dying, and
    starts over once it has run `stable` seconds, so a crash loop does not spin the machine.
    """

    def __init__(self, commands: Mapping[str, list[str]], env: Mapping[str, str] | None = None,
                 *, first_delay: float = 1.0, cap: float = 30.0, stable: float = 60.0,
                 say: Callable[[str], None] | None = None) -> None:
        self.commands = dict(commands)
        self.env = dict(env) if env is not None else None
        self.first_delay, self.cap, self.stable = first_delay, cap, stable
        self.say = say or log.warning
        self.children: dict[str, subprocess.Popen] = {}
        self.started_at: dict[str, float] = {}
        self.delays: dict[str, float] = {}
        self.restart_at: dict[str, float] = {}
        self.restarts: Counter[str] = Counter()

    def start(self) -> None:
        """Start every command."""
        for name in self.commands:
            self._spawn(name)

    def _spawn(self, name: str) -> None:
        self.children[name] = subprocess.Popen(self.commands[name], env=self.env)
        self.started_at[name] = time.monotonic()

    def check(self) -> None:
        """Notice exited children and start again those whose delay has passed."""
        now = time.monotonic()
        for name, child in self.children.items():
            code = child.poll()
            if code is None:
                continue
            if name not in self.restart_at:
                ran = now - self.started_at[name]
                delay = self.first_delay if ran >= self.stable else min(
                    self.cap, self.delays.get(name, self.first_delay / 2) * 2)
                self.delays[name] = delay
                self.restart_at[name] = now + delay
                self.say(f"{name} exited with code {code}; starting it again in {delay:.1f} s")
            elif now >= self.restart_at[name]:
                del self.restart_at[name]
                self.restarts[name] += 1
                self._spawn(name)

    def run(self, stopping: Callable[[], bool] = lambda: False, poll: float = 0.2) -> None:
        """Supervise until `stopping()` is true (or KeyboardInterrupt)."""
        while not stopping():
            self.check()
            time.sleep(poll)

    def stop(self, grace: float = 5.0) -> None:
        """Ask every child to stop (SIGTERM), then kill those still running after `grace`."""
        for child in self.children.values():
            if child.poll() is None:
                child.terminate()
        for child in self.children.values():
            try:
                child.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()

"""`python tests/signal_at.py MODULE:ATTR N SIGNAL -- <skillexp args>`: run skillexp, sending this process SIGNAL
at the start of the N-th call of MODULE:ATTR (a function, or Class.method), so a test can land a scheduler's
signal at an exact point of the pipeline: inside a checkpoint, an export, an eval; `import:MODULE` sends it as
the import of MODULE begins (the entry point's first seconds). The signal is delivered where
Python runs the handler: at the first bytecode of the call, before the original function runs."""
from __future__ import annotations

import functools
import importlib
import os
import signal
import sys


class _OnImport:
    """A meta-path finder that sends the signal when the `nth` import of `module` begins (then steps aside)."""

    def __init__(self, module: str, nth: int, signum: int):
        self.module, self.nth, self.signum, self.calls = module, nth, signum, 0

    def find_spec(self, name, path=None, target=None):
        if name == self.module and name not in sys.modules:
            self.calls += 1
            if self.calls == self.nth:
                sys.meta_path.remove(self)
                print(f"signal_at: {signal.Signals(self.signum).name} as the import of {name} begins",
                      file=sys.stderr, flush=True)
                os.kill(os.getpid(), self.signum)
        return None


def arm(target: str, nth: int, signum: int) -> None:
    """`MODULE:ATTR`: at the start of the nth call of that function; `import:MODULE`: as its import begins."""
    if target.startswith("import:"):
        sys.meta_path.insert(0, _OnImport(target.removeprefix("import:"), nth, signum))
        return
    module, attr = target.split(":")
    owner = importlib.import_module(module)
    *path, name = attr.split(".")
    for part in path:
        owner = getattr(owner, part)
    original = getattr(owner, name)
    calls = [0]

    @functools.wraps(original)
    def hooked(*args, **kwargs):
        calls[0] += 1
        if calls[0] == nth:
            print(f"signal_at: {signal.Signals(signum).name} at call {nth} of {target}", file=sys.stderr, flush=True)
            os.kill(os.getpid(), signum)
        return original(*args, **kwargs)

    setattr(owner, name, hooked)


if __name__ == "__main__":
    target, nth, name, sep, *args = sys.argv[1:]
    assert sep == "--", "usage: signal_at.py MODULE:ATTR N SIGNAL -- <skillexp args>"
    sys.path.insert(0, os.getcwd())
    from skillexp.__main__ import main

    arm(target, int(nth), getattr(signal, name))
    sys.argv = ["skillexp", *args]
    main()

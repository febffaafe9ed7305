"""A vislab command run in a child process that stops at one function, to be signalled there."""

STALLED = """
import importlib, sys, time
from vislab.cli import main
module = importlib.import_module({module!r})
real = getattr(module, {name!r})
def stalled(*a, **k):
    if {call_through!r}:
        real(*a, **k)
    print({word!r}, flush=True)
    time.sleep(120)
setattr(module, {name!r}, stalled)
sys.exit(main(sys.argv[1:]))
"""


def stalled_at(module: str, name: str, word: str, call_through: bool = True) -> str:
    """python -c source of vislab's CLI (its arguments after -c) in which module.name runs
    (unless call_through is False), prints word and sleeps for 2 minutes."""
    return STALLED.format(module=module, name=name, word=word, call_through=call_through)

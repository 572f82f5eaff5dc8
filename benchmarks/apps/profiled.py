"""Run ``python -m MODULE ARGS...`` under cProfile and write the profile when OUT.prof.dump appears.

Servers own the process's signals (and re-raise SIGTERM after a graceful stop, so a profile written at exit
may never be), hence a file as the trigger, watched by a daemon thread. The profile is of the main thread,
where the event loop runs. Usage: python profiled.py OUT.prof MODULE ARGS...
"""

from __future__ import annotations

import cProfile
import os
import runpy
import sys
import threading
import time

out, module = sys.argv[1], sys.argv[2]
profiler = cProfile.Profile()


def _watch() -> None:
    while not os.path.exists(out + ".dump"):
        time.sleep(0.1)
    profiler.dump_stats(out + ".part")
    os.replace(out + ".part", out)


threading.Thread(target=_watch, daemon=True).start()
sys.argv = [module, *sys.argv[3:]]
profiler.enable()
runpy.run_module(module, run_name="__main__", alter_sys=True)

"""Run one command; write its wall time and peak RSS, uncontaminated, to a JSON file.

    python bench/spawn.py OUT.json -- CMD ARGS...

Why a launcher: Linux carries a process's peak RSS across exec, and a child spawned by the
bench (vfork + exec) starts with the *bench's* peak: the tenant and the simulator, hundreds
of MB at 100k users. This small fresh interpreter forks the command instead, so the child's
``ru_maxrss`` is its own (plus this launcher's ~10 MB at fork). Wall time runs from fork to
exit, leaving out the launcher's own start-up.
"""

from __future__ import annotations

import json
import os
import sys
import time


def main() -> int:
    out, sep, *cmd = sys.argv[1:]
    assert sep == "--" and cmd, __doc__
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(cmd[0], cmd)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    wall = time.monotonic() - start
    code = os.waitstatus_to_exitcode(status)
    with open(out, "w") as f:
        json.dump({"wall": wall, "rss_mb": usage.ru_maxrss / 1024, "code": code}, f)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())

"""A push run as its own process, for the kill -9 test: ``python -m tests.push.killpush STORE URL VERSION``."""

from __future__ import annotations

import sys

from syncd.config import ScimApp
from syncd.push.engine import push_application
from syncd.store.db import Store
from tests.push.conftest import FAST, TOKEN, World

USERS = 300
GROUPS = 8


def world(version: int) -> World:
    """The same directory in every process; version 1 changes a fair part of it."""
    w = World()
    uids = [w.user(f"user{i:04}@contoso.com") for i in range(USERS)]
    gids = [w.group(f"Group {k}", *uids[k::GROUPS]) for k in range(GROUPS)]
    w.admins(*uids[:3])
    if version >= 1:
        for uid in uids[::7]:
            w.set(uid, display_name=f"Renamed {uid}")
        for uid in uids[3::11]:
            w.deactivate(uid)
        w.rename(gids[0], "Group Zero")
        w.remove_group(gids[1])
        w.members[gids[2]].update(uids[:40])
    return w


def main() -> None:
    store_path, url, version = sys.argv[1], sys.argv[2], int(sys.argv[3])
    app = ScimApp(name="split", base_url=url, token_file="-", deactivation_threshold=0, token=TOKEN, concurrency=4)
    with Store(store_path) as store:
        print("pushing", flush=True)  # (the test's kill clock starts here, not during imports)
        out = push_application(app, store.conn, world(version).directory(), cycle_id=f"v{version}", options=FAST)
    print(out.status, out.requests, len(out.errors), flush=True)
    for error in out.errors:
        print(error, file=sys.stderr)


if __name__ == "__main__":
    main()

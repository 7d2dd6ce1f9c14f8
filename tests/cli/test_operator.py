"""What an operator meets around the cycle: a store that is missing, old, loose or not theirs;
check-config on the installed layout; help; output files. The real CLI in a subprocess."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.store.schema import SCHEMA_VERSION
from tests.conftest import Result, run_syncd

ENTRA = """[entra]
tenant_id = "11111111-aaaa-4aaa-8aaa-111111111111"
client_id = "22222222-bbbb-4bbb-8bbb-222222222222"
service_principal_id = "33333333-cccc-4ccc-8ccc-333333333333"
"""
READ_ONLY = [
    ["status"], ["status", "--json"], ["users", "list"], ["users", "show", "ada@example.com"], ["groups", "list", "--json"],
    ["groups", "show", "Administrators"], ["invites", "list"], ["report"], ["reports"], ["reports", "export"],
    ["explain", "ada@example.com"], ["audit", "verify"],
]


def configure(directory: Path, store: Path, secret: str = "client-secret") -> Path:
    config = directory / "config.toml"
    config.write_text(ENTRA + f'client_secret_file = "{secret}"\n[store]\npath = "{store}"\n')
    return config


def files_under(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


# --------------------------------------------------------------------------- a missing store


@pytest.mark.parametrize("args", READ_ONLY, ids=" ".join)
def test_a_command_that_only_reads_refuses_a_missing_store_and_creates_nothing(tmp_path: Path, args: list[str]) -> None:
    store = tmp_path / "mistyped" / "state" / "syncd.db"
    config = configure(tmp_path, store)
    before = files_under(tmp_path)
    r = run_syncd(*args, "--config", str(config))
    assert r.code == 2, r
    assert r.out == "" and r.err.count("\n") == 1 and "Traceback" not in r.err
    assert f"no store at {store}" in r.err and str(config) in r.err and "syncd sync" in r.err
    assert files_under(tmp_path) == before  # no store, no directory, no lock


@pytest.mark.parametrize("args", [["users", "activate", "ada@example.com"], ["groups", "add-member", "Administrators", "ada"]], ids=" ".join)
def test_a_change_to_an_object_needs_an_existing_store(tmp_path: Path, args: list[str]) -> None:
    store = tmp_path / "state" / "syncd.db"
    config = configure(tmp_path, store)
    r = run_syncd(*args, "--config", str(config))
    assert r.code == 2 and "no store at" in r.err, r
    assert not store.parent.exists()


def test_add_commands_create_the_store_and_then_read_only_commands_work(tmp_path: Path) -> None:
    store = tmp_path / "state" / "syncd.db"
    config = configure(tmp_path, store)  # (the secret does not exist: no command here reads it)
    assert run_syncd("users", "add", "ada@example.com", "--config", str(config)).code == 0
    assert stat.S_IMODE(store.stat().st_mode) == 0o600 and stat.S_IMODE(store.parent.stat().st_mode) == 0o700
    for args in READ_ONLY:
        r = run_syncd(*args, "--config", str(config))
        expected = 1 if args == ["report"] else 0  # (no cycle has run yet: said as such)
        assert r.code == expected and "Traceback" not in r.err, (args, r)


# --------------------------------------------------------------------------- never migrated, seeded or written

# each family of commands that only look, as an operator runs them on a synced store
# ({user}: a user of the store, {out}: a directory for output files)
LOOKING = {
    "status": [["status"], ["status", "--json"]],
    "users": [["users", "list"], ["users", "list", "--json", "--status", "active"], ["users", "show", "{user}", "--json"]],
    "groups": [["groups", "list"], ["groups", "show", "Administrators", "--json"]],
    "invites": [["invites", "list", "--json"]],
    "report": [["report"], ["report", "latest", "--format", "csv"], ["report", "--format", "html", "-o", "{out}/r.html"]],
    "reports": [["reports"], ["reports", "--json"], ["reports", "export"], ["reports", "export", "-o", "{out}/e.jsonl"],
                ["reports", "export", "--sqlite", "{out}/e.db"]],
    "explain": [["explain", "{user}"], ["explain", "{user}", "--json"]],
    "audit": [["audit", "verify"], ["audit", "verify", "--json"]],
}


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """A store two demo cycles wrote, its configuration, and one of its users."""
    d = tmp_path_factory.mktemp("synced")
    r = run_syncd("demo", "--store", str(d / "demo.db"), "--json", timeout=120)
    assert r.code == 0, r
    config = d / "demo.toml"
    users = json.loads(run_syncd("users", "list", "--json", "--config", str(config)).out)
    return config, d / "demo.db", next(u["user_name"] for u in users if u["managed"])


def _as_it_is(store: Path) -> dict[str, tuple[str, int]]:
    """Every file beside the store (its -shm aside: SQLite's readers mark what they read
    there) with its digest and mtime."""
    return {p.name: (_digest(p), p.stat().st_mtime_ns) for p in sorted(store.parent.iterdir())
            if p.name.startswith(store.name) and not p.name.endswith("-shm")}


# the real CLI, noting every SQLite database it opens (sqlite3.connect's first argument)
SPY = (
    "import json, sqlite3, sys\n"
    "opened, connect = [], sqlite3.connect\n"
    "sqlite3.connect = lambda database, *a, **k: (opened.append(str(database)), connect(database, *a, **k))[1]\n"
    "import syncd.cli as cli\n"
    "exit_ = cli._exit\n"
    "cli._exit = lambda code: (print('OPENED ' + json.dumps(opened), file=sys.stderr), exit_(code))\n"
    "sys.argv = ['syncd', *sys.argv[1:]]\n"
    "cli.main()\n"
)


def run_spied(*args: str) -> tuple[Result, list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    proc = subprocess.run([sys.executable, "-c", SPY, *args], capture_output=True, text=True, env=env, timeout=120,
                          stdin=subprocess.DEVNULL)
    opened = [json.loads(line[len("OPENED "):]) for line in proc.stderr.splitlines() if line.startswith("OPENED ")]
    return Result(proc.returncode, proc.stdout, proc.stderr), opened[0] if opened else []


@pytest.mark.parametrize("family", sorted(LOOKING))
def test_commands_that_only_look_leave_the_store_as_it_is(synced: tuple[Path, Path, str], family: str, tmp_path: Path) -> None:
    config, store, user = synced
    before = _as_it_is(store)
    assert store.name in before
    for args in LOOKING[family]:
        r, opened = run_spied(*[a.format(user=user, out=tmp_path) for a in args], "--config", str(config))
        assert r.code == 0 and "Traceback" not in r.err, (args, r)
        mine = [db for db in opened if str(store) in db]
        assert mine and all(db.startswith("file:") and db.endswith("?mode=ro") for db in mine), (args, opened)
        assert _as_it_is(store) == before, args  # not written, migrated, seeded or checkpointed
    # and where there is no store, none is made
    missing = configure(tmp_path, tmp_path / "none" / "syncd.db")
    for args in LOOKING[family]:
        r = run_syncd(*[a.format(user=user, out=tmp_path) for a in args], "--config", str(missing))
        assert r.code == 2 and "no store at" in r.err, (args, r)
    assert not (tmp_path / "none").exists()



def _as_older_store(path: Path) -> None:
    """The store as the syncd before schema 3 left it: entries one per row."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE entries (cycle_seq INTEGER NOT NULL REFERENCES cycles (seq) ON DELETE CASCADE, "
                 "n INTEGER NOT NULL, entry TEXT NOT NULL, PRIMARY KEY (cycle_seq, n)) WITHOUT ROWID")
    conn.execute("DROP TABLE entry_chunks")
    conn.execute("PRAGMA user_version = 2")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_an_older_store_is_refused_by_readers_untouched_and_upgraded_by_the_first_writer(tmp_path: Path) -> None:
    store = tmp_path / "syncd.db"
    config = configure(tmp_path, store)
    assert run_syncd("users", "add", "ada@example.com", "--config", str(config)).code == 0
    _as_older_store(store)
    before = _digest(store)
    for args in (["status"], ["users", "list"], ["reports"], ["audit", "verify"]):
        r = run_syncd(*args, "--config", str(config))
        assert r.code == 1 and "older syncd" in r.err and "syncd sync" in r.err and r.err.count("\n") == 1, (args, r)
    assert _digest(store) == before  # not migrated, nothing written
    code = "import sys; from syncd.store.db import Store; Store(sys.argv[1]).close(); print('sqlite_utils' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code, str(store)], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"  # a pending migration loads sqlite-utils
    with sqlite3.connect(store) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert json.loads(run_syncd("users", "list", "--json", "--config", str(config)).out)[0]["user_name"] == "ada@example.com"


def test_a_store_its_first_cycle_never_set_up_is_answered_as_a_missing_one(tmp_path: Path) -> None:
    # a first cycle killed after creating the file, before its schema committed
    store = tmp_path / "syncd.db"
    config = configure(tmp_path, store)
    sqlite3.connect(store).execute("PRAGMA journal_mode = WAL").fetchone()
    for args in (["status"], ["users", "list"], ["reports"], ["audit", "verify"]):
        r = run_syncd(*args, "--config", str(config))
        assert r.code == 2 and "holds nothing yet" in r.err and "syncd sync" in r.err and r.err.count("\n") == 1, (args, r)
    assert run_syncd("users", "add", "ada@example.com", "--config", str(config)).code == 0  # a writer sets it up
    assert run_syncd("audit", "verify", "--config", str(config)).code == 0


def test_opening_an_up_to_date_store_never_imports_sqlite_utils(tmp_path: Path) -> None:
    store = tmp_path / "syncd.db"
    code = (
        "import sys; from syncd.store.db import Store\n"
        "Store(sys.argv[1]).close()\n"  # creates it: its migrations do load sqlite-utils
        "for m in [m for m in sys.modules if m.startswith('sqlite_utils')]: del sys.modules[m]\n"
        "Store(sys.argv[1]).close(); Store(sys.argv[1], readonly=True).close()\n"
        "print('sqlite_utils' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(store)], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    config = configure(tmp_path, store)
    # `syncd status`, as the command line runs it, up to its exit
    probe = (
        "import sys\nimport syncd.cli as cli\nexit_ = cli._exit\n"
        "cli._exit = lambda code: (print('LOADED' if 'sqlite_utils' in sys.modules else 'LIGHT', file=sys.stderr), exit_(code))\n"
        "sys.argv = ['syncd', 'status', '--config', sys.argv[1]]\ncli.main()\n"
    )
    r = subprocess.run([sys.executable, "-c", probe, str(config)], capture_output=True, text=True)
    assert r.returncode == 0 and "LIGHT" in r.stderr, r.stderr


def test_a_store_with_loose_modes_is_warned_about_by_readers_and_tightened_by_writers(tmp_path: Path) -> None:
    store = tmp_path / "syncd.db"
    config = configure(tmp_path, store)
    assert run_syncd("users", "add", "ada@example.com", "--config", str(config)).code == 0
    store.chmod(0o644)
    r = run_syncd("status", "--json", "--config", str(config))
    assert r.code == 0 and "readable by other users" in r.err and "0644" in r.err, r
    assert json.loads(r.out)  # stdout stays one JSON document
    assert stat.S_IMODE(store.stat().st_mode) == 0o644  # a reader changes nothing
    assert run_syncd("users", "add", "bob@example.com", "--config", str(config)).code == 0
    for p in tmp_path.iterdir():
        if p.name.startswith("syncd.db"):
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, p


# --------------------------------------------------------------------------- a store the service user cannot write


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory another user can reach (pytest's tmp_path is root's alone)."""
    d = Path(tempfile.mkdtemp(prefix="syncd-access-"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


NOBODY = 65534


SETPRIV = shutil.which("setpriv")


def run_as_nobody(*args: str) -> Result:
    """The real CLI as the user nobody, as a service user without rights would run it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    proc = subprocess.run(
        [str(SETPRIV), f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", sys.executable, "-m", "syncd", *args],
        capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL, cwd="/",
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


needs_root = pytest.mark.skipif(os.geteuid() != 0 or SETPRIV is None, reason="running as another user needs root and setpriv (util-linux)")


@needs_root
@pytest.mark.parametrize("args", [["run"], ["users", "add", "ada@example.com"], ["groups", "add", "Sales"]], ids=" ".join)
def test_a_store_directory_the_user_cannot_write_is_one_line_and_exit_2(shared_dir: Path, args: list[str]) -> None:
    state = shared_dir / "state"
    state.mkdir(mode=0o755)  # root's, as a StateDirectory= that never got its owner
    secret = shared_dir / "client-secret"
    secret.write_text("s3cret")
    secret.chmod(0o644)
    config = configure(shared_dir, state / "syncd.db", secret=str(secret))
    config.chmod(0o644)
    r = run_as_nobody(*args, "--config", str(config))
    assert r.code == 2, r
    assert "Traceback" not in r.err and "PermissionError" not in r.err and "internal error" not in r.err
    line = [x for x in r.err.splitlines() if x.startswith("syncd:")]
    assert len(line) == 1, r.err
    assert f"{state} is not writable by user nobody (owned by root, mode 0755)" in line[0], r.err
    assert os.listdir(state) == []


@needs_root
def test_a_store_the_user_cannot_read_names_its_owner(shared_dir: Path) -> None:
    store = shared_dir / "syncd.db"
    secret = shared_dir / "client-secret"
    secret.write_text("s3cret")
    secret.chmod(0o644)
    config = configure(shared_dir, store)
    config.chmod(0o644)
    assert run_syncd("users", "add", "ada@example.com", "--config", str(config)).code == 0  # root's, 0600
    r = run_as_nobody("users", "list", "--config", str(config))
    assert r.code == 2 and f"the store {store} is not readable by user nobody (owned by root, mode 0600)" in r.err, r
    r = run_as_nobody("check-config", "--config", str(config))
    assert r.code == 2 and "store.path:" in r.err and "not writable by user nobody" in r.err, r
    store.chmod(0o644)  # readable, but reading a WAL store needs a -shm file nobody may create here
    for sibling in (Path(f"{store}-wal"), Path(f"{store}-shm")):
        sibling.unlink(missing_ok=True)
    r = run_as_nobody("users", "list", "--config", str(config))
    assert r.code == 2 and f"SQLite needs {store}-shm beside it" in r.err and "Traceback" not in r.err, r


@needs_root
def test_files_root_creates_in_the_service_users_directory_stay_the_service_users(shared_dir: Path) -> None:
    state = shared_dir / "state"
    state.mkdir(mode=0o700)
    os.chown(state, NOBODY, NOBODY)
    config = configure(shared_dir, state / "syncd.db")
    assert run_syncd("users", "add", "ada@example.com", "--config", str(config)).code == 0  # as root
    assert {p.name: p.stat().st_uid for p in state.iterdir()} and all(p.stat().st_uid == NOBODY for p in state.iterdir())
    config.chmod(0o644)
    r = run_as_nobody("users", "add", "bob@example.com", "--config", str(config))  # the service user writes on
    assert r.code == 0, r


# --------------------------------------------------------------------------- check-config on the installed layout


def installed(tmp_path: Path) -> tuple[Path, Path]:
    """/etc/syncd as the README installs it: config.example.toml with ids, the secret beside it."""
    etc = tmp_path / "etc" / "syncd"
    etc.mkdir(parents=True)
    example = (Path(__file__).resolve().parents[2] / "config.example.toml").read_text()
    store = tmp_path / "var" / "lib" / "syncd" / "syncd.db"
    text = (example.replace("00000000-0000-0000-0000-000000000000", "44444444-dddd-4ddd-8ddd-444444444444", 1)
            .replace('path = "/var/lib/syncd/syncd.db"', f'path = "{store}"'))
    (etc / "config.toml").write_text(text)
    secret = etc / "client-secret"
    secret.write_text("the-secret-value\n")
    secret.chmod(0o600)
    return etc / "config.toml", secret


def test_check_config_on_the_installed_layout_reads_the_secret_beside_the_configuration(tmp_path: Path) -> None:
    config, secret = installed(tmp_path)
    r = run_syncd("check-config", "--config", str(config))
    assert r.code == 0, r
    resolved = tomllib.loads(r.out)  # TOML, as it says
    assert resolved["entra"]["client_secret_file"] == str(secret)
    assert resolved["sync"]["skip_out_of_scope_deactivations"] is False and resolved["mapping"]["admin_group_aliases"] == ["Split_Administrators"]
    assert "None" not in r.out and "False" not in r.out and "['" not in r.out
    assert "the-secret-value" not in r.out + r.err
    assert "does not exist yet" in r.out  # the store, said as a comment
    # the ids still as config.example.toml has them are pointed out
    assert "entra.service_principal_id is still the placeholder" in r.err and "entra.tenant_id is still the placeholder" in r.err


def test_inside_a_unit_a_relative_secret_is_the_credential_systemd_hands_over(tmp_path: Path) -> None:
    config, _ = installed(tmp_path)
    creds = tmp_path / "run" / "credentials" / "syncd.service"
    creds.mkdir(parents=True)
    (creds / "client-secret").write_text("handed-over\n")
    (creds / "client-secret").chmod(0o600)
    r = run_syncd("check-config", "--json", "--config", str(config), env={"CREDENTIALS_DIRECTORY": str(creds)})
    assert r.code == 0, r
    assert json.loads(r.out)["entra"]["credential"] == f"secret from entra.client_secret_file {creds}/client-secret"
    # a unit without that credential: named, with the line to add
    (creds / "client-secret").unlink()
    r = run_syncd("check-config", "--config", str(config), env={"CREDENTIALS_DIRECTORY": str(creds)})
    assert r.code == 2 and "LoadCredential=client-secret:/etc/syncd/client-secret" in r.err, r


def test_a_secret_named_by_its_path_in_run_credentials_is_explained(tmp_path: Path) -> None:
    config, _ = installed(tmp_path)
    config.write_text(config.read_text().replace('client_secret_file = "client-secret"',
                                                 'client_secret_file = "/run/credentials/syncd.service/client-secret"'))
    r = run_syncd("check-config", "--config", str(config))
    assert r.code == 2 and "only while its unit runs" in r.err and 'client_secret_file = "client-secret"' in r.err, r


def test_check_config_reports_every_problem_one_line_each(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[entra]\ntenant_id = 5\ncolour = "blue"\n[sync]\ninterval_minutes = 0\nscope = "some"\n[bogus]\nx = 1\n')
    r = run_syncd("check-config", "--config", str(config))
    assert r.code == 2 and "Traceback" not in r.err
    lines = r.err.strip().splitlines()
    for key in ("entra.tenant_id", "entra.colour", "sync.interval_minutes", "sync.scope", "bogus", "entra.client_id",
                "entra.service_principal_id", "entra.client_secret_file"):
        assert sum(key in line for line in lines) >= 1, (key, lines)
    assert all(line.startswith("syncd: ") for line in lines) and len(lines) == 8, lines


# --------------------------------------------------------------------------- help


def _commands(group: list[str]) -> list[list[str]]:
    r = run_syncd(*group, "--help")
    assert r.code == 0, r
    listed = r.out.split("Commands:", 1)[1].splitlines() if "Commands:" in r.out else []
    return [[*group, line.split()[0]] for line in listed if line.startswith("  ") and line.split() and not line.startswith("   ")]


def test_every_command_and_option_has_help() -> None:
    commands = [c for c in _commands([]) if c != ["simulator"]]
    for group in (["users"], ["groups"], ["invites"], ["reports"], ["audit"]):
        commands += _commands(group)
    assert len(commands) > 20
    for command in commands:
        r = run_syncd(*command, "--help")
        assert r.code == 0, (command, r)
        usage, _, rest = r.out.partition("\n\n")
        description = rest.split("\n\nOptions:")[0].strip()
        assert description, (command, r.out)
        lines = r.out.split("Options:", 1)[1].split("\n\nCommands:")[0].splitlines()
        for i, line in enumerate(lines):
            if line.startswith("  -"):
                text = line.strip().partition("  ")[2]
                following = lines[i + 1] if i + 1 < len(lines) else ""
                assert text.strip() or following.startswith("       "), (command, line)  # (help on the next line)
    r = run_syncd("simulator", "--help")
    assert r.code == 0 and "--demo-changes" in r.out and "usage: syncd simulator" in r.out


def test_root_help_lists_the_exit_codes_and_syncd_alone_is_a_usage_error() -> None:
    r = run_syncd("--help")
    assert r.code == 0
    for code in "012345":
        assert f"\n    {code}  " in r.out, code
    alone = run_syncd()
    assert alone.code == 2 and alone.out == "" and "Exit codes:" in alone.err
    group = run_syncd("users")
    assert group.code == 2 and "list" in group.err


def test_the_manual_is_readable_from_the_command_line() -> None:
    r = run_syncd("manual")
    assert r.code == 0 and "rules" in r.out and "troubleshooting" in r.out
    r = run_syncd("manual", "rules")
    assert r.code == 0 and "**R12 Administrators keeps a member.**" in r.out
    r = run_syncd("manual", "nope")
    assert r.code == 2 and "no page 'nope'" in r.err


def test_the_rules_cited_in_messages_are_defined_in_the_manual() -> None:
    """Every "(Rn)" that code can print is a rule docs/rules.md defines."""
    import re

    root = Path(__file__).resolve().parents[2]
    defined = set(re.findall(r"\*\*(R\d+a?) ", (root / "docs" / "rules.md").read_text()))
    cited = set()
    for path in (root / "syncd").rglob("*.py"):
        cited |= set(re.findall(r"\((R\d+a?)\)", path.read_text()))
    assert cited and cited <= defined, cited - defined


# --------------------------------------------------------------------------- output files


@pytest.mark.parametrize("args", [["report", "-o"], ["reports", "export", "-o"], ["reports", "export", "--sqlite"]], ids=" ".join)
def test_an_output_file_in_a_missing_directory_is_one_line_and_exit_2(tmp_path: Path, args: list[str]) -> None:
    store = tmp_path / "syncd.db"
    config = configure(tmp_path, store)
    assert run_syncd("users", "add", "ada@example.com", "--config", str(config)).code == 0
    target = tmp_path / "missing" / "dir" / "x"
    r = run_syncd(*args, str(target), "--config", str(config))
    assert r.code == 2 and r.err.count("\n") == 1, r
    assert f"the directory {target.parent} does not exist" in r.err and "Traceback" not in r.err

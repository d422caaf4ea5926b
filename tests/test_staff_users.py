"""Staff users (argon2 PIN hashes) and the audit trail in SQLite (issue 10), and the `mirror staff`
commands end to end, the PIN always on stdin."""

import json
import os
import pwd
import sqlite3
import subprocess
import sys

import pytest
from argon2 import PasswordHasher

from mirror.storage.orders import OrderJournal
from mirror.storage.staff import HASH_PARAMS, StaffError, StaffUsers
from tests.conftest import ROOT

FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
PIN = "9081726354"           # long enough that no timestamp or hash contains it by chance


@pytest.fixture
def users(tmp_path):
    u = StaffUsers(tmp_path / "orders.db", hasher=FAST)
    yield u
    u.close()


def all_text(path) -> str:
    """Every value of every table in the file, as text."""
    db = sqlite3.connect(path)
    return "\n".join(db.iterdump())


def test_pins_are_stored_as_argon2_hashes_only(tmp_path, users):
    users.add_user("Anna", PIN)
    row = users.db.execute("SELECT * FROM staff_users").fetchone()
    assert row["pin_hash"].startswith("$argon2id$") and PIN not in row["pin_hash"]
    assert PIN not in all_text(tmp_path / "orders.db")
    assert users.list_users() == [{"name": "Anna", "created_at": row["created_at"], "last_login_at": None}]
    assert "pin_hash" not in users.list_users()[0]


def test_verify_right_and_wrong_pins(users):
    users.add_user("Anna", PIN, now=100.0)
    users.add_user("Bo Ström", "50817")
    assert users.verify("Anna", PIN, now=200.0) == "Anna"
    assert users.verify("anna", PIN) == "Anna"                     # any case of the name
    assert users.verify(None, PIN) == "Anna"                       # the console logs in with the PIN alone
    assert users.verify(None, "50817") == "Bo Ström"
    assert users.verify("Anna", "50817") is None                   # someone else's PIN
    assert users.verify("Anna", "90817") is None
    assert users.verify(None, "00000") is None
    assert users.verify("Nobody", PIN) is None
    for bad in ("", "1234", "12a45", None, 12345, "1" * 65):
        assert users.verify("Anna", bad) is None
    assert {u["name"]: u["last_login_at"] for u in users.list_users()}["Anna"] is not None


def test_names_and_pins_are_checked(users):
    for pin in ("1234", "12a45", "", " 12345", "１２３４５", "1" * 65):           # fullwidth digits are not 0-9
        with pytest.raises(StaffError):
            users.add_user("Anna", pin)
    for pin in ("11111", "12345", "98765", "0123456789", "000000"):              # the first ones guessed
        with pytest.raises(StaffError, match="first one guessed"):
            users.add_user("Anna", pin)
    for name in ("", " Anna", "Anna ", "x" * 41, "cli:root", "tab\there", "new\nline"):
        with pytest.raises(StaffError):
            users.add_user(name, PIN)
    users.add_user("x" * 40, "19283")
    users.add_user("Zoë", "26451")
    users.add_user("Anna", PIN)
    with pytest.raises(StaffError, match="already a staff user 'Anna'"):
        users.add_user("ANNA", "39172")                              # unique whatever the case
    with pytest.raises(StaffError, match="another staff user has this PIN"):
        users.add_user("Cleo", PIN)
    assert [u["name"] for u in users.list_users()] == ["Anna", "x" * 40, "Zoë"]
    assert users.count() == 3


def test_remove_user(users):
    users.add_user("Anna", PIN)
    assert users.remove_user("anna", by="cli:test") == "Anna"
    assert users.verify(None, PIN) is None and users.list_users() == []
    with pytest.raises(StaffError, match="no staff user 'Anna'"):
        users.remove_user("Anna")
    users.add_user("Cleo", PIN)                                      # the PIN is free again
    assert users.verify(None, PIN) == "Cleo"


def test_a_hash_made_with_other_argon2_parameters_is_replaced_at_login(tmp_path):
    path = tmp_path / "orders.db"
    with StaffUsers(path, hasher=FAST) as u:
        u.add_user("Anna", PIN)
        old = u.db.execute("SELECT pin_hash FROM staff_users").fetchone()[0]
    assert "m=1024,t=1,p=1" in old
    with StaffUsers(path) as u:                                      # the product's parameters
        assert u.verify("Anna", "19283") is None
        assert u.db.execute("SELECT pin_hash FROM staff_users").fetchone()[0] == old   # no match, no change
        assert u.verify("Anna", PIN) == "Anna"
        new = u.db.execute("SELECT pin_hash FROM staff_users").fetchone()[0]
        p = HASH_PARAMS
        assert new != old and f"m={p['memory_cost']},t={p['time_cost']},p={p['parallelism']}" in new
        assert u.verify(None, PIN) == "Anna"


def test_audit_entries(users):
    users.add_user("Anna", PIN, by="cli:root", now=10.0)
    users.audit("Anna", "suggestion.push", {"skus": ["SHOE-0301"], "note": "für sie"}, now=11.0)
    users.remove_user("Anna", by="cli:root", now=12.0)
    log = users.list_audit()
    assert [(e["who"], e["action"], e["at"]) for e in log] == [
        ("cli:root", "staff.remove_user", 12.0), ("Anna", "suggestion.push", 11.0),
        ("cli:root", "staff.add_user", 10.0)]
    assert log[1]["detail"] == {"skus": ["SHOE-0301"], "note": "für sie"}
    assert log[2]["detail"] == {"name": "Anna"}
    assert [e["action"] for e in users.list_audit(limit=1)] == ["staff.remove_user"]
    with pytest.raises(StaffError):
        users.audit("Anna", "Not An Action")
    with pytest.raises(StaffError):
        users.audit("", "x.y")
    with pytest.raises(StaffError):
        users.audit("Anna", "x.y", {"bad": object()})
    assert len(users.list_audit()) == 3
    users.add_user("Bo", "70394")                                    # no `by`: no entry
    with pytest.raises(StaffError):                                  # a refused change writes no entry
        users.add_user("bo", "84625", by="cli:root")
    assert len(users.list_audit()) == 3


def test_same_file_as_the_orders_with_a_schema_version(tmp_path):
    path = tmp_path / "orders.db"
    j = OrderJournal(path)
    with StaffUsers(path, hasher=FAST) as u:
        u.add_user("Anna", PIN)
    with StaffUsers(path, hasher=FAST) as u:                         # opening again keeps everything
        assert [x["name"] for x in u.list_users()] == ["Anna"]
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta WHERE key='schema.staff'").fetchone()[0] == "1"
    assert db.execute("SELECT COUNT(*) FROM meta WHERE key='uid_salt'").fetchone()[0] == 1   # the journal's own
    assert j.list_orders() == []
    j.close()


# --- the command line --------------------------------------------------------------------------------------
def mirror(tmp_path, *args, stdin=""):
    env = dict(os.environ, MIRROR_CHECKOUT_DB_PATH=str(tmp_path / "state" / "orders.db"))
    env.pop("SUDO_USER", None)
    return subprocess.run([sys.executable, "-m", "mirror", *args], cwd=ROOT, env=env, input=stdin,
                          capture_output=True, text=True, timeout=120)


def one_error_line(r) -> str:
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_cli_staff_users_end_to_end(tmp_path):
    db = tmp_path / "state" / "orders.db"
    who = "cli:" + pwd.getpwuid(os.getuid()).pw_name
    r = mirror(tmp_path, "staff", "list-users", "--json")
    assert r.returncode == 0 and json.loads(r.stdout) == {"users": []} and not db.exists()
    r = mirror(tmp_path, "staff", "add-user", "Anna", "--pin-stdin", stdin=PIN + "\n")
    assert r.returncode == 0, r.stderr
    assert PIN not in r.stdout + r.stderr

    assert "at least 5 digits" in one_error_line(mirror(tmp_path, "staff", "add-user", "Bo", "--pin-stdin",
                                                        stdin="1234\n"))
    assert "digits only" in one_error_line(mirror(tmp_path, "staff", "add-user", "Bo", "--pin-stdin",
                                                  stdin="12a45\n"))
    assert "no PIN on stdin" in one_error_line(mirror(tmp_path, "staff", "add-user", "Bo", "--pin-stdin"))
    assert "already a staff user 'Anna'" in one_error_line(
        mirror(tmp_path, "staff", "add-user", "anna", "--pin-stdin", stdin="50817\n"))
    assert "another staff user has this PIN" in one_error_line(
        mirror(tmp_path, "staff", "add-user", "Bo", "--pin-stdin", stdin=PIN + "\n"))
    assert "--pin-stdin" in one_error_line(mirror(tmp_path, "staff", "add-user", "Bo"))     # stdin is no terminal
    assert "':'" in one_error_line(mirror(tmp_path, "staff", "add-user", "cli:root", "--pin-stdin",
                                          stdin="50817\n"))
    r = mirror(tmp_path, "staff", "add-user", "Bo", "50817")                # a PIN in argv is not accepted
    assert r.returncode == 2

    r = mirror(tmp_path, "staff", "list-users", "--json")
    users = json.loads(r.stdout)["users"]
    assert [u["name"] for u in users] == ["Anna"] and set(users[0]) == {"name", "created_at", "last_login_at"}
    r = mirror(tmp_path, "staff", "list-users")
    assert r.returncode == 0 and "Anna" in r.stdout and "argon2" not in r.stdout
    with StaffUsers(db) as u:                                               # the hash the CLI wrote
        assert u.verify(None, PIN) == "Anna"

    r = mirror(tmp_path, "staff", "remove-user", "ANNA")
    assert r.returncode == 0 and "'Anna' removed" in r.stdout
    assert "no staff user 'Anna'" in one_error_line(mirror(tmp_path, "staff", "remove-user", "Anna"))

    r = mirror(tmp_path, "staff", "audit", "--json")
    entries = json.loads(r.stdout)["audit"]
    assert [(e["who"], e["action"], e["detail"]) for e in entries] == [
        (who, "staff.remove_user", {"name": "Anna"}), (who, "staff.add_user", {"name": "Anna"})]
    assert [e["action"] for e in json.loads(mirror(tmp_path, "staff", "audit", "--json", "--limit", "1")
                                            .stdout)["audit"]] == ["staff.remove_user"]
    r = mirror(tmp_path, "staff", "audit")
    assert r.returncode == 0 and "staff.add_user" in r.stdout and who in r.stdout
    assert "--limit" in one_error_line(mirror(tmp_path, "staff", "audit", "--limit", "0"))
    assert PIN not in all_text(db)

"""Every key the option schema accepts is read somewhere in vsrt (no option that silently does nothing).

A key counts as read when its name appears as a string literal in the vsrt package outside the tables
that only declare or type-check keys (the schema itself). Keys read generically are listed with the reason.
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

from vsrt import options

PACKAGE = Path(options.__file__).resolve().parent
# module-level tables of vsrt/options.py and vsrt/option_values.py that declare keys or check their
# types, which is not using them
DECLARATIONS = {"SCHEMA", "DATASET_KEYS", "RENAMED_KEYS", "INTEGER_OPTIONS", "NUMBER_OPTIONS",
                "DATASET_INTEGER_OPTIONS", "REQUIRED"}
# keys whose value is read without the key's name being written out (a computed key, a whole section
# passed on), each with the reason; none today: network_g, metrics and tile keys are not schema keys,
# they are checked against their constructors
READ_GENERICALLY: dict[str, str] = {}


def schema_keys() -> set[str]:
    keys = set(options.DATASET_KEYS)
    for key, section in options.SCHEMA.items():
        keys.add(key)
        for sub, leaves in (section or {}).items():
            keys.add(sub)
            keys.update(leaves or {})
    return keys


def literals_read() -> Counter[str]:
    """String literals of the vsrt package, except those inside the declaration tables."""
    found: Counter[str] = Counter()
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skipped: set[int] = set()
        if path.name in ("options.py", "option_values.py"):
            for node in tree.body:
                targets = node.targets if isinstance(node, ast.Assign) else \
                    [node.target] if isinstance(node, ast.AnnAssign) else []
                if any(isinstance(t, ast.Name) and t.id in DECLARATIONS for t in targets):
                    skipped.update(id(n) for n in ast.walk(node))
        for node in ast.walk(tree):  # docstrings and other bare strings mention keys without reading them
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
                skipped.add(id(node.value))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skipped:
                found[node.value] += 1
    return found


def test_every_accepted_option_key_is_read_somewhere():
    read = literals_read()
    unread = sorted(key for key in schema_keys() if not read[key] and key not in READ_GENERICALLY)
    assert not unread, f"option keys accepted but read nowhere in vsrt (implement them or reject them): {unread}"


def test_the_check_itself_finds_an_unread_key(monkeypatch):
    """The walk can fail: a key only declared in the schema is reported."""
    monkeypatch.setitem(options.SCHEMA["train"], "not_read_anywhere_xyz", options.ANY)
    read = literals_read()
    assert "not_read_anywhere_xyz" in schema_keys() and not read["not_read_anywhere_xyz"]
    assert read["accumulate_grad"] and read["perceptual_opt"]
    assert set(READ_GENERICALLY) <= schema_keys(), "stale allow-list entry"

"""The mutation list of ``scripts/mutation_check.py`` keeps matching the code (the check itself is slow
and runs by hand: ``python scripts/mutation_check.py``)."""

from __future__ import annotations

import importlib.util
import sys

from helpers import REPO_ROOT


def load_mutation_check():
    """The script as a module (registered in ``sys.modules``, which its dataclass needs)."""
    spec = importlib.util.spec_from_file_location("vsrt_script_mutation_check",
                                                  REPO_ROOT / "scripts" / "mutation_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


mutation_check = load_mutation_check()


def test_every_mutant_applies_cleanly():
    """Each original snippet occurs exactly once, differs from its replacement, and names existing tests."""
    assert mutation_check.check_applies(REPO_ROOT) == []
    assert len(mutation_check.MUTANTS) >= 20


def test_a_mutant_is_applied_in_the_copy_only_and_restored(tmp_path, monkeypatch):
    mutant = mutation_check.MUTANTS[0]
    (tmp_path / "parent").mkdir()
    copy = tmp_path / "parent" / "repo"
    (copy / mutant.path).parent.mkdir(parents=True)
    source = (REPO_ROOT / mutant.path).read_text(encoding="utf-8")
    (copy / mutant.path).write_text(source, encoding="utf-8")
    seen = []

    def fake_run_tests(root, tests, timeout):
        seen.append((root, tests, (root / mutant.path).read_text(encoding="utf-8")))
        return "failed", 0.0, ""

    monkeypatch.setattr(mutation_check, "run_tests", fake_run_tests)
    assert mutation_check.apply_and_test(copy, mutant, mutant.tests, 10)[0] == "killed"
    (root, tests, mutated), = seen
    assert root == copy and tests == mutant.tests
    assert mutated == source.replace(mutant.original, mutant.replacement, 1) != source
    assert (copy / mutant.path).read_text(encoding="utf-8") == source  # restored
    assert (REPO_ROOT / mutant.path).read_text(encoding="utf-8") == source  # the real tree is never touched


def test_the_copy_refuses_a_parent_with_shared_fixtures(tmp_path):
    (tmp_path / "shared").mkdir()
    try:
        mutation_check.copy_tree(REPO_ROOT, tmp_path)
    except RuntimeError as err:
        assert "shared" in str(err)
    else:
        raise AssertionError("copy_tree accepted a parent folder holding shared/")

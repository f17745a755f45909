"""The folder rule: every exercise of the manifest is laid out the same way,
so a maintainer adds one by adding folders that look like the others.

- exercises/<id>/ holds its README.md, every file its manifest entry
  declares (the stubs, and the provided files the student does not edit),
  and one visible test file test_<stub>.py per stub, and no other test file;
- solutions/<id>/ holds exactly the stub files, under the same names;
- grader/hidden/<id>/ holds one suite test_hidden_<stub>.py per stub and
  nothing else at its top; what a suite installs (a shim, say) lives in
  grader/hidden/<id>/support/;
- no folder there is missing from the manifest."""

from __future__ import annotations

import shutil
from pathlib import Path

from grader.course import manifest

SKIPPED = {"__pycache__"}


def _names(folder: Path, suffix: str = "") -> set[str]:
    return {p.name for p in folder.iterdir() if p.name not in SKIPPED
            and not p.name.startswith(".") and p.name.endswith(suffix)} if folder.is_dir() else set()


def folder_problems(exercises: list[manifest.Exercise], exercises_dir: Path,
                    solutions_dir: Path, hidden_dir: Path) -> list[str]:
    """Every way the three trees break the folder rule, in words."""
    problems = []
    for ex in exercises:
        stubs = [Path(name).stem for name in ex.files]
        visible, solution, hidden = exercises_dir / ex.id, solutions_dir / ex.id, hidden_dir / ex.id
        provided = [exercises_dir / name if "/" in name else visible / name for name in ex.provided]
        for path in [visible / "README.md", *(visible / name for name in ex.files), *provided]:
            if not path.is_file():
                problems.append(f"{ex.id}: no {path.relative_to(exercises_dir.parent)}")
        tests = _names(visible, ".py") - set(ex.files) - {Path(p).name for p in ex.provided}
        wanted = {f"test_{stem}.py" for stem in stubs}
        problems += [f"{ex.id}: no visible test file exercises/{ex.id}/{name} for its stub"
                     for name in sorted(wanted - tests)]
        problems += [f"{ex.id}: exercises/{ex.id}/{name} is not test_<stub>.py of a stub"
                     for name in sorted(tests - wanted)]
        if _names(solution) != set(ex.files):
            problems.append(f"{ex.id}: solutions/{ex.id}/ holds {sorted(_names(solution))}, "
                            f"not the stub files {sorted(ex.files)}")
        suites = {f"test_hidden_{stem}.py" for stem in stubs}
        if _names(hidden) - {"support"} != suites:
            problems.append(f"{ex.id}: grader/hidden/{ex.id}/ holds {sorted(_names(hidden))}, "
                            f"not the suites {sorted(suites)} (and support/)")
    ids = {ex.id for ex in exercises}
    for base, where in ((exercises_dir, "exercises"), (solutions_dir, "solutions"),
                        (hidden_dir, "grader/hidden")):
        folders = {p.name for p in base.iterdir() if p.is_dir() and p.name not in SKIPPED}
        problems += [f"{where}/{name}/ is no exercise of the manifest"
                     for name in sorted(folders - ids)]
    return problems


def test_every_exercise_follows_the_folder_rule():
    problems = folder_problems(list(manifest.load()), manifest.EXERCISES_DIR,
                               manifest.SOLUTIONS_DIR, manifest.HIDDEN_DIR)
    assert not problems, "\n".join(problems)


def test_the_rule_names_each_thing_out_of_place(tmp_path):
    trees = {}
    for name, source in (("exercises", manifest.EXERCISES_DIR), ("solutions", manifest.SOLUTIONS_DIR),
                         ("hidden", manifest.HIDDEN_DIR)):
        trees[name] = tmp_path / name
        shutil.copytree(source, trees[name], ignore=shutil.ignore_patterns("__pycache__"))
    exercises = list(manifest.load())
    assert folder_problems(exercises, *trees.values()) == []
    (trees["exercises"] / "02_tcp_client" / "test_sockethelpers.py").unlink()
    (trees["exercises"] / "03_poll" / "README.md").unlink()
    (trees["exercises"] / "01_tcp_server" / "test_extra.py").write_text("")
    (trees["solutions"] / "06_udp" / "udp_client.py").unlink()
    (trees["hidden"] / "04_epoll" / "support" / "uepoll_instrumented.py").rename(
        trees["hidden"] / "04_epoll" / "uepoll_instrumented.py")
    (trees["hidden"] / "99_extra").mkdir()
    problems = folder_problems(exercises, *trees.values())
    expected = ["02_tcp_client: no visible test file exercises/02_tcp_client/test_sockethelpers.py",
                "03_poll: no exercises/03_poll/README.md",
                "01_tcp_server: exercises/01_tcp_server/test_extra.py is not test_<stub>.py",
                "06_udp: solutions/06_udp/ holds",
                "04_epoll: grader/hidden/04_epoll/ holds",
                "grader/hidden/99_extra/ is no exercise"]
    for text in expected:
        assert any(p.startswith(text) for p in problems), f"{text!r} not in {problems}"
    assert len(problems) == len(expected), problems

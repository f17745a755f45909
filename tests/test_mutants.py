"""Every known-buggy variant in tests/mutants/ must lose points, on the test
it names. A mutant is a folder tests/mutants/<exercise>/<bug>/ holding the
changed file(s) and a mutant.toml:

    description = "what the bug is, in a student's terms"
    catches = ["test_name_that_must_fail", ...]
"""

import tomllib

import pytest

from grader import manifest
from grader.runner import grade_exercise

from support import MUTANTS_DIR, build_submission


def _mutants():
    found = []
    for spec in sorted(MUTANTS_DIR.glob("*/*/mutant.toml")):
        folder = spec.parent
        found.append(pytest.param(folder, id=f"{folder.parent.name}/{folder.name}"))
    return found


@pytest.mark.parametrize("folder", _mutants())
def test_mutant_is_caught_by_the_test_it_names(folder, tmp_path):
    exercise = manifest.get(folder.parent.name)
    spec = tomllib.loads((folder / "mutant.toml").read_text())
    catches = spec["catches"]
    assert spec.get("description"), "a mutant says what its bug is"
    changed = [n for n in exercise.files if (folder / n).exists()]
    assert changed, f"{folder} holds none of {exercise.files}"
    for name in changed:
        assert (folder / name).read_bytes() != (exercise.solution_folder / name).read_bytes(), \
            f"{folder / name} is identical to the solution"
    submission = build_submission(tmp_path, exercise, overlay=folder)
    result = grade_exercise(exercise, submission, select=" or ".join(catches))
    by_name = {t.name.split("[")[0]: t for t in result.tests}
    for name in catches:
        assert name in by_name, f"{name} is not a test of {exercise.id} (ran: {sorted(by_name)})"
        assert by_name[name].status == "failed", (
            f"mutant {folder.name} ({spec['description']}) was not caught by {name}")
    assert result.score < result.max_score


def test_every_exercise_has_at_least_six_mutants():
    counts = {e.id: len(list((MUTANTS_DIR / e.id).glob("*/mutant.toml"))) for e in manifest.load()}
    short = {k: v for k, v in counts.items() if v < 6}
    assert not short, f"exercises with fewer than 6 mutants: {short}"

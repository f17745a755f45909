"""Every known-buggy variant in tests/mutants/ must lose points, on the test
it names. A mutant is a folder tests/mutants/<exercise>/<bug>/ with a
mutant.toml that describes the bug as changes to the reference solution:

    description = "what the bug is, in a student's terms"
    catches = ["test_name_that_must_fail", ...]

    [[change]]
    file = "chat_server.py"
    old = '''text of the solution'''
    new = '''what the bug puts there'''
"""

import pytest

from grader.course import manifest
from grader.grading.grade_exercise import grade_exercise
from support import MUTANTS_DIR, build_submission, mutated_files, read_mutant


def _mutants():
    return [pytest.param(spec.parent, id=f"{spec.parent.parent.name}/{spec.parent.name}")
            for spec in sorted(MUTANTS_DIR.glob("*/*/mutant.toml"))]


@pytest.mark.parametrize("folder", _mutants())
def test_mutant_is_caught_by_the_test_it_names(folder, tmp_path):
    exercise = manifest.get(folder.parent.name)
    spec = read_mutant(folder)
    assert spec.get("description"), "a mutant says what its bug is"
    catches = spec["catches"]
    changed = mutated_files(exercise, spec)
    assert changed, f"{folder} changes nothing"
    assert set(changed) <= set(exercise.files), f"{folder} changes a file students do not submit"
    for name, text in changed.items():
        assert text != (exercise.solution_folder / name).read_text(), f"{name} is unchanged"
    submission = build_submission(tmp_path, exercise, spec)
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

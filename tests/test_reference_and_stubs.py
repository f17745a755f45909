"""Every reference solution scores full marks and every stub scores zero,
on the hidden and visible suites together (rustlings' "solutions pass,
exercises start unsolved")."""

import pytest

from grader.course import manifest
from grader.grading import formats
from grader.grading.grade_exercise import grade_exercise

EXERCISES = [e for e in manifest.load() if e.supported_here()]
IDS = [e.id for e in EXERCISES]


@pytest.mark.parametrize("exercise", EXERCISES, ids=IDS)
def test_reference_solution_scores_full_marks(exercise):
    result = grade_exercise(exercise, manifest.SOLUTIONS_DIR)
    assert result.max_score == exercise.points, (
        f"{exercise.id}: the tests' points add up to {result.max_score}, "
        f"the manifest says {exercise.points}")
    assert result.score == exercise.points, formats.failures([result]) or result.message
    assert all(t.max_score > 0 for t in result.tests), "a test without points"


@pytest.mark.parametrize("exercise", EXERCISES, ids=IDS)
def test_stub_scores_zero(exercise):
    result = grade_exercise(exercise, manifest.EXERCISES_DIR)
    assert result.tests, f"{exercise.id}: no test ran against the stub: {result.message}"
    passed = [t.name for t in result.tests if t.status == "passed"]
    assert result.score == 0, f"{exercise.id}: the stub earns points from {passed}"

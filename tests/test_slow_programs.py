"""A correct program that is slow still earns full marks: every wait of the
suites (grader/harness/waits.py) leaves room for a program that spends
1.5 s starting up and takes 5 times as long over every socket call.

Each exercise's reference solution is rewritten into the `slow` shape of
grader/bench/variants.py (slow-start and slow-messages at once) and graded
as instructors grade it, hidden and visible suites together."""

import pytest

from grader.bench import variants
from grader.course import manifest
from grader.grading import formats
from grader.grading.grade_exercise import grade_exercise

EXERCISES = [e for e in manifest.load() if e.supported_here()]
IDS = [e.id for e in EXERCISES]


@pytest.mark.parametrize("exercise", EXERCISES, ids=IDS)
@pytest.mark.timeout(400)
def test_slow_correct_program_scores_full_marks(exercise, tmp_path):
    tree = variants.build(exercise, "slow", tmp_path / "slow")
    result = grade_exercise(exercise, tree)
    assert result.tests, f"{exercise.id}: no test ran: {result.message}"
    assert result.score == result.max_score == exercise.points, (
        f"{exercise.id}, slowed ({variants.SHAPES['slow'].description}): "
        f"{result.score}/{result.max_score}\n" + (formats.failures([result]) or result.message))

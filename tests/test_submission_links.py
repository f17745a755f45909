"""Links in a submission are never followed: an exercise folder that is a
symbolic link (to the course's solutions, say) is reported and scores 0;
only the submission root the instructor names may be a link."""

from __future__ import annotations

import os
import shutil

from grader.course import manifest
from grader.course.submission import link_problem, locate, snapshot
from grader.grading import grade_exercise
from support import build_submission

EXERCISE = manifest.get("03_poll")
MESSAGE = (f"{EXERCISE.id} is a symbolic link (to {EXERCISE.solution_folder}); links are not "
           "followed: submit the folder itself")


def linked_submission(tmp_path):
    root = tmp_path / "student"
    root.mkdir()
    (root / EXERCISE.id).symlink_to(EXERCISE.solution_folder, target_is_directory=True)
    return root


def test_a_linked_exercise_folder_is_found_but_refused(tmp_path):
    root = linked_submission(tmp_path)
    folder = locate(root, EXERCISE)
    assert folder == root / EXERCISE.id and link_problem(folder) == MESSAGE
    dest = tmp_path / "copy"
    dest.mkdir()
    snap = snapshot(folder, EXERCISE, dest)
    assert snap.problems == [MESSAGE] and snap.copied == []
    assert not any(name in os.listdir(dest) for name in EXERCISE.files)


def test_a_linked_exercise_folder_scores_0_with_the_reason(tmp_path):
    result = grade_exercise.grade_exercise(EXERCISE, linked_submission(tmp_path))
    assert (result.score, result.max_score, result.tests) == (0, 100, [])
    assert result.message == MESSAGE


def test_the_instructors_submission_root_may_be_a_link(tmp_path):
    exercise = manifest.get("01_tcp_server")
    real = build_submission(tmp_path / "real", exercise)
    link = tmp_path / "graded"
    link.symlink_to(real, target_is_directory=True)
    assert locate(link, exercise) == real.resolve() / exercise.id
    one = "test_greets_the_client_by_address"
    result = grade_exercise.grade_exercise(exercise, link, select=one)
    assert result.message == "" and [t.name for t in result.tests if t.score] == [one]


def test_a_link_anywhere_below_the_root_is_not_read(tmp_path):
    exercise = manifest.get("01_tcp_server")
    root = tmp_path / "student"
    build_submission(root, exercise)
    inner = root / exercise.id
    # The exercise's file is a link to the solution: refused, as before.
    (inner / "tcp_server.py").unlink()
    (inner / "tcp_server.py").symlink_to(exercise.solution_folder / "tcp_server.py")
    dest = tmp_path / "a"
    dest.mkdir()
    snap = snapshot(locate(root, exercise), exercise, dest)
    assert "symbolic link" in snap.problems[0] and os.listdir(dest) == []
    # A named pipe would block a plain open(); it is refused at once.
    (inner / "tcp_server.py").unlink()
    os.mkfifo(inner / "tcp_server.py")
    dest = tmp_path / "b"
    dest.mkdir()
    snap = snapshot(locate(root, exercise), exercise, dest)
    assert snap.problems == ["tcp_server.py is not a regular file"]
    # The plain file is copied.
    (inner / "tcp_server.py").unlink()
    shutil.copyfile(exercise.solution_folder / "tcp_server.py", inner / "tcp_server.py")
    dest = tmp_path / "c"
    dest.mkdir()
    snap = snapshot(locate(root, exercise), exercise, dest)
    assert snap.complete and (dest / "tcp_server.py").read_bytes() == \
        (exercise.solution_folder / "tcp_server.py").read_bytes()


def test_grade_class_reports_a_linked_exercise_folder_in_the_row(tmp_path):
    from grader.grading import grade_class
    class_dir = tmp_path / "class"
    class_dir.mkdir()
    linked_submission(class_dir).rename(class_dir / "mallory")
    output = tmp_path / "book.csv"
    [outcome] = grade_class.grade_class(class_dir, output, [EXERCISE], jobs=1)
    assert outcome.scores == {EXERCISE.id: 0}
    assert outcome.notes == [f"{EXERCISE.id}: {MESSAGE}"]

"""The nbgrader course: `build_course` writes it (build time); `autograde_cell`
and `autograde_guard` run inside `nbgrader autograde` (grade time)."""

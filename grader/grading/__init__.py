"""Grading at the instructor's end: one exercise of one submission, a whole
class, the test groups by task, and the report formats."""

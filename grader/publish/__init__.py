"""Generators of what the course hands out or installs elsewhere: the student
repository, the Classroom workflow, the Gradescope bundle, the nbgrader course."""

"""socklab's grader: the harness that drives student programs, the pytest
plugin that scores them, and the `socklab` command line."""

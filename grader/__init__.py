"""socklab's grader: the harness that drives student programs, the pytest
plugin that scores them, and the `socklab` command line, in layers that
import only the layers below them (see README's Layout)."""

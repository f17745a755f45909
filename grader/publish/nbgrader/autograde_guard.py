"""Keep a student's own code out of the kernel that autogrades them.

A socklab notebook only wraps the submitted .py files: its code cells are
the course's graded cells and nothing else. nbgrader runs every code cell
of a submitted notebook in one kernel, so a cell a student adds before the
tests could replace the grading function and give itself full marks. The
preprocessor below removes every code cell that nbgrader did not restore
from its gradebook; it runs in autograde's sanitizing step, right after
`OverwriteCells` has put the course's source back into each known cell
(and cleared the `grade_id` of cells it does not know)."""

from __future__ import annotations

from nbgrader.converters import Autograde
from nbgrader.preprocessors import NbGraderPreprocessor, OverwriteCells


class DropUngradedCode(NbGraderPreprocessor):
    """Remove the code cells that are not the course's graded cells."""

    def preprocess(self, nb, resources):
        kept = [cell for cell in nb.cells
                if cell.cell_type != "code" or cell.metadata.get("nbgrader", {}).get("grade_id")]
        dropped = len(nb.cells) - len(kept)
        if dropped:
            self.log.warning("Dropped %d code cell(s) that are not the course's graded cells "
                             "(a socklab notebook holds no student code)", dropped)
        nb.cells = kept
        return nb, resources


def sanitize_preprocessors() -> list:
    """nbgrader's own sanitizing steps, with DropUngradedCode right after
    OverwriteCells (the config sets Autograde.sanitize_preprocessors to this)."""
    steps = list(Autograde.class_traits()["sanitize_preprocessors"].default())
    steps.insert(steps.index(OverwriteCells) + 1, DropUngradedCode)
    return steps

"""Facts about the course: the manifest, the READMEs, a submission's files.

Nothing here starts a process; every other layer may import it."""

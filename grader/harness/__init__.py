"""Spawning and confining a student's programs: ports, pexpect, the sandbox,
the jail, and calling a student's functions in a child process."""

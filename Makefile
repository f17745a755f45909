# Two commands on a fresh machine with Python 3.11+ and make:
#   make grade   grade the reference solutions and the stubs, print both tables
#   make test    run the project's whole test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.socklab-installed
JOBS ?= 2

.PHONY: grade test venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "socklab needs Python 3.11 or newer")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,instructor,bench]'
	touch $(STAMP)

grade: $(STAMP)
	$(VENV)/bin/socklab grade solutions
	@echo
	$(VENV)/bin/socklab grade exercises

test: $(STAMP)
	$(PY) -m pytest -n $(JOBS) tests

# The full bench (not part of `make test`; half an hour or more on 2 cores, most
# of it filling chat rooms of 10,000): a table, docs/bench-results/bench.csv, and the
# plot that exercises/04_epoll/README.md shows. See docs/bench.md.
.PHONY: bench
bench: $(STAMP)
	$(VENV)/bin/socklab bench --fds 100,1000,5000,10000 --output docs/bench-results \
		--plot exercises/04_epoll/bench.png

# What grading itself costs, on the reference solutions and on programs broken
# on purpose (hours: every shape of every exercise, 3 runs; not part of `make
# test`): a table and docs/bench-results/grading.csv. See docs/grading-bench.md.
.PHONY: bench-grading
bench-grading: $(STAMP)
	$(VENV)/bin/socklab bench grading

clean:
	rm -rf $(VENV) *.egg-info

# The two commands of the README, and the rest of a user's day.
PY := .venv/bin/python
FF := .venv/bin/funfactory

.PHONY: setup demo test test-all bench clean

setup:
	bash scripts/setup.sh

demo: setup
	$(FF) demo --out demo-out

test: setup
	$(PY) -m pytest -q -m "not slow" tests

test-all: setup
	$(PY) -m pytest -q tests

bench: setup
	$(PY) -m bench.run_all

# The report's data effects in miniature, as paired runs (docs/effects.md); about an hour on 2 cores.
.PHONY: effects
effects: setup
	$(PY) -m funfactory.effects --out effects-out --readme README.md

clean:
	rm -rf demo-out

# The two set-up commands (README): `make demo` runs the demo recipe end to end on the
# embedded corpus; `make test` runs the tests. Each installs what it needs first.
.PHONY: demo test setup bench

setup:
	bash utils/setup.sh

demo: setup
	cd egs/demo/ASR && ./run.sh $(ARGS)

test: setup
	.venv/bin/python -m pytest -q tests $(ARGS)

bench: setup
	for b in bench/bench_*.py; do .venv/bin/python $$b || exit 1; done

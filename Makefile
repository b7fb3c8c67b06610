# The two commands of the README. Both create .venv and install the package into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The extras installed into .venv: dev (pytest, ruff) and beam (the Beam build path and its
# tests, which are skipped without it). `make test EXTRAS=dev` leaves Beam out.
EXTRAS ?= dev,beam
comma := ,
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
# Where `make demo` writes everything (data, run folder, export, pictures).
DEMO_DIR ?= runs/demo

.PHONY: demo test venv bench lint clean

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/hgn demo --out $(DEMO_DIR)

test: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check hgn_tf datasets tuning export tests bench

bench: $(STAMP)
	$(BIN)/python bench/bench_generation.py

clean:
	rm -rf $(VENV) runs build *.egg-info

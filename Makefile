# Hippocrate: `make demo` runs the platform with synthetic data, `make test` the suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
export HIPPOCRATE_DATA_DIR ?= var

.PHONY: install demo serve test lint typecheck unit bench catalogues screenshots clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/hippocrate demo

serve: $(STAMP)
	$(BIN)/hippocrate serve

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/lint-imports
	$(BIN)/python scripts/lint_sealed_queries.py src/hippocrate

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -n auto

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python -m bench

# The README's pictures of the main pages (docs/screenshots/), from a fresh demo in
# headless Chromium (Debian's chromium package).
screenshots: $(STAMP)
	$(BIN)/python scripts/screenshots.py

# Re-extract the messages marked with _n in the code and _() in the templates, and update every language's
# catalogue (new messages added empty, removed ones dropped); then translate the empty
# msgstr of locales/fr: tests/test_catalogues.py fails until every one is.
LOCALES := src/hippocrate/locales
catalogues: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg --no-default-keywords -k _n -k _ --no-location --sort-output \
	  --project Hippocrate -o $(VENV)/messages.pot src/hippocrate
	for language in fr en; do \
	  $(BIN)/pybabel update -i $(VENV)/messages.pot -d $(LOCALES) -D messages -l $$language \
	    --init-missing --ignore-obsolete --no-fuzzy-matching || exit 1; \
	done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

# Every target installs what it needs into .venv first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install run test test-ha lint proto bench clean

$(STAMP): pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e clients/python -e '.[dev,embedded,otel]'
	@# xds-protos (Envoy's API) ships an old copy of opentelemetry/proto/*, which
	@# overwrites opentelemetry-proto's and breaks the OTLP exporter's import:
	@# opentelemetry-proto's own files go in last.
	$(BIN)/pip install --quiet --force-reinstall --no-deps "opentelemetry-proto==$$($(BIN)/python -c 'import importlib.metadata as m; print(m.version("opentelemetry-proto"))')"
	touch $@

## install also brings Debian's libzbar0 (the QR decoder the tests use) when root and missing
install: $(STAMP)
	@ldconfig -p 2>/dev/null | grep -q 'libzbar\.so\.0' || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && { apt-get install -y -qq libzbar0 >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq libzbar0 >/dev/null; }; }; } || echo "libzbar0 missing: the QR decoding test will fail"

## run: serve on $$AUTHSVC_LISTEN (default 127.0.0.1:50051); embedded Postgres when AUTHSVC_DATABASE_URL is unset
run: install
	$(BIN)/authsvc serve

## test: the whole suite (unit, integration, e2e, ruff, mypy, generated code current); pgbouncer from Debian if missing
test: install
	bash scripts/ha-deps.sh pgbouncer
	$(BIN)/pytest

## test-ha: Patroni failovers under load (tests/ha; about 10 minutes); pgbouncer, etcd-server, patroni from Debian if missing
test-ha: install
	bash scripts/ha-deps.sh
	$(BIN)/pytest -m ha tests/ha

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

## proto: regenerate clients/python/authsvc_client/_proto from protos/
proto: install
	$(BIN)/python scripts/genproto.py

## bench: throughput and latency beside their ceilings (not part of test); libnghttp2-dev from Debian if root
bench: install
	@[ -e /usr/include/nghttp2/nghttp2.h ] || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && apt-get update -qq && apt-get install -y -qq libnghttp2-dev >/dev/null; } || echo "libnghttp2-dev missing: bench falls back to the Python load generator"
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .authsvc .mypy_cache .ruff_cache .pytest_cache

# custos — see README.md.
.PHONY: run test vulncheck bench build fuzz

run: ## run the server on the embedded default (SQLite in ./custos-data)
	go run ./cmd/custos serve

test: ## the whole test suite, installing what it needs
	scripts/test.sh

vulncheck: ## govulncheck where its database is reachable
	scripts/vulncheck.sh

build: ## build ./bin/custos
	CGO_ENABLED=0 go build -trimpath -o bin/custos ./cmd/custos

bench: ## the benchmark table (docs/PERFORMANCE.md)
	go run ./bench

fuzz: ## run each fuzz target for FUZZTIME (default 10s)
	scripts/fuzz.sh

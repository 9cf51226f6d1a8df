# custos — see README.md.
.PHONY: run test vulncheck bench bench-gateway build fuzz agentcheck

run: ## run the server on the embedded default (SQLite in ./custos-data)
	go run ./cmd/custos serve

test: ## the whole test suite, installing what it needs
	scripts/test.sh

vulncheck: ## govulncheck where its database is reachable
	scripts/vulncheck.sh

build: ## build ./bin/custos
	CGO_ENABLED=0 go build -trimpath -o bin/custos ./cmd/custos

bench: ## the benchmark tables (docs/PERFORMANCE.md): vault reads, then the model gateway
	go run ./bench
	go run ./bench/gatewaybench

bench-gateway: ## the model gateway's latency and throughput table only
	go run ./bench/gatewaybench

fuzz: ## run each fuzz target for FUZZTIME (default 10s)
	scripts/fuzz.sh

agentcheck: ## try the real Codex CLI and Claude Code (from npm) through a throwaway custos
	scripts/agentcheck.sh

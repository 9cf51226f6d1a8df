#!/usr/bin/env bash
# The one test command: installs what it needs on a fresh machine, then runs
# every check CI runs. Usage: scripts/test.sh   (or: make test)
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned tool versions, installed from the Go module proxy into .tools/bin.
STATICCHECK_VERSION=v0.8.2      # honnef.co/go/tools
GOSEC_VERSION=v2.30.0           # github.com/securego/gosec/v2
GOVULNCHECK_VERSION=v1.9.0      # golang.org/x/vuln

export GOBIN="$PWD/.tools/bin"
export PATH="$GOBIN:$PATH"
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"

step() { printf '\n== %s\n' "$*"; }

step "toolchain"
command -v go >/dev/null || { echo "go is not installed: install Go 1.26 or newer first" >&2; exit 1; }
go version

step "install pinned tools into .tools/bin"
install_tool() { # name module@version
	if ! [ -x "$GOBIN/$1" ] || ! grep -qs "$2" "$GOBIN/.$1.version"; then
		go install "$2"
		echo "$2" > "$GOBIN/.$1.version"
	fi
	echo "$1: $2"
}
mkdir -p "$GOBIN"
install_tool staticcheck "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
install_tool gosec "github.com/securego/gosec/v2/cmd/gosec@$GOSEC_VERSION"
install_tool govulncheck "golang.org/x/vuln/cmd/govulncheck@$GOVULNCHECK_VERSION"

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.tools/*'))
if [ -n "$unformatted" ]; then echo "gofmt would change:"; echo "$unformatted"; exit 1; fi
echo ok

step "go vet"
go vet ./...
echo ok

step "staticcheck"
staticcheck ./...
echo ok

step "gosec"
gosec -quiet -exclude-generated -exclude-dir=testdata ./...
echo ok

step "PostgreSQL and Redis on loopback (scripts/services.sh)"
export CUSTOS_SERVICES_DIR="${CUSTOS_SERVICES_DIR:-$(mktemp -d /tmp/custos-services.XXXXXX)}"
trap 'scripts/services.sh stop >/dev/null 2>&1 || true' EXIT
eval "$(scripts/services.sh start)"
# The tests that need these servers skip only when the variables are absent;
# here they are always set, and this makes a skip a failure.
export CUSTOS_REQUIRE_SERVICES=1

step "go test -race (every package; log in .tools/test.log)"
log=.tools/test.log
set +e
go test -race -count=1 -v ./... > "$log" 2>&1
rc=$?
set -e
grep -E '^(ok|FAIL|panic:)|^\?' "$log" || true
if [ $rc -ne 0 ]; then
	echo; echo "failures:"
	grep -E -B2 -A25 -- '--- FAIL|^panic:' "$log" | head -n 400 || true
fi
passed=$(grep -cE '^[[:space:]]*--- PASS' "$log" || true)
failed=$(grep -cE '^[[:space:]]*--- FAIL' "$log" || true)
# Every test runs here, against real servers: a skipped test is a failure.
if grep -qE '^[[:space:]]*--- SKIP' "$log"; then
	echo; echo "skipped tests (not allowed in this run):"
	grep -E -A3 '^[[:space:]]*--- SKIP' "$log" | head -n 100
	failed=$((failed + $(grep -cE '^[[:space:]]*--- SKIP' "$log")))
	rc=1
fi

if [ $rc -eq 0 ]; then
	step "fuzz smoke (each target 2s; longer: make fuzz FUZZTIME=1m)"
	FUZZTIME=2s scripts/fuzz.sh > .tools/fuzz.log 2>&1 || { cat .tools/fuzz.log; rc=1; failed=$((failed + 1)); }
	grep -E '^(==|ok|FAIL)' .tools/fuzz.log || true

	step "govulncheck (informational)"
	scripts/vulncheck.sh || true
fi

echo
echo "tests: $passed passed, $failed failed"
exit $rc

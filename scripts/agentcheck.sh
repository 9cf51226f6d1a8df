#!/usr/bin/env bash
# Tries the real coding agents through custos: the Codex CLI (OpenAI's
# Responses API) and Claude Code (Anthropic's Messages API), installed from
# npm, each pointed at a throwaway `custos serve` whose providers are
# scripts/agentcheck, a loopback model that answers with the placeholders it
# received. A GitHub token planted in each prompt must reach the agent
# restored and never the provider; Codex must also run a tool call whose
# command custos restored and send its output back.
#
#   make agentcheck          (or: scripts/agentcheck.sh)
#   CODEX_VERSION=0.169.0 CLAUDE_CODE_VERSION=2.1.330 make agentcheck
#
# Not part of `make test`: it downloads the agents' binaries from npm.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null || { echo "agentcheck: needs $1" >&2; exit 2; }; }
need go
need npm
need curl

tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo $((20000 + RANDOM % 20000)); }

echo "== build custos and the mock provider"
go build -o "$tmp/custos" ./cmd/custos
go build -o "$tmp/agentcheck" ./scripts/agentcheck

agents="$PWD/.tools/agents"
echo "== install the agents from npm into $agents"
npm install --silent --no-audit --no-fund --prefix "$agents" \
	"@openai/codex@${CODEX_VERSION:-latest}" "@anthropic-ai/claude-code@${CLAUDE_CODE_VERSION:-latest}" >/dev/null
codex="$agents/node_modules/.bin/codex"
claude="$agents/node_modules/.bin/claude"
echo "codex $("$codex" --version 2>/dev/null | tail -1); claude $("$claude" --version 2>/dev/null | tail -1)"

port=$(free_port)
mport=$(free_port)
home="$tmp/home"
mkdir -p "$home" "$tmp/work"
export HOME="$home" CUSTOS_URL="http://127.0.0.1:$port"
"$tmp/agentcheck" -addr "127.0.0.1:$mport" -record "$tmp/seen.jsonl" 2>"$tmp/mock.log" &
pids+=($!)
"$tmp/custos" serve --addr "127.0.0.1:$port" --data "$tmp/data" >"$tmp/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -fsS "$CUSTOS_URL/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS "$CUSTOS_URL/healthz" >/dev/null || { cat "$tmp/serve.log"; exit 1; }
CUSTOS_API_KEY=$(cat "$tmp/data/owner.key")
export CUSTOS_API_KEY
"$tmp/custos" provider add lab --kind local --model 'gpt-5*' --base-url "http://127.0.0.1:$mport/v1" --no-key >/dev/null
"$tmp/custos" provider add anth --kind local-anthropic --model 'claude-*' --base-url "http://127.0.0.1:$mport" --no-key >/dev/null
agent_key() { "$tmp/custos" key create --name "$1" --role agent 2>/dev/null | awk '/^token:/ {print $2}'; }
codex_key=$(agent_key codex)
claude_key=$(agent_key claude-code)
token="ghp_$(od -An -tx1 -N18 /dev/urandom | tr -d ' \n')" # 36 random hex digits

failed=0
check() { # check NAME COMMAND...: PASS when COMMAND succeeds
	local name=$1
	shift
	if "$@"; then echo "PASS $name"; else echo "FAIL $name"; failed=$((failed + 1)); fi
}
lacks() { ! grep -q "$@"; }

echo "== Codex: codex exec, a tool call (Responses API, streamed)"
mkdir -p "$tmp/codex"
cat >"$tmp/codex/config.toml" <<EOF
model = "gpt-5-codex"
model_provider = "custos"

[model_providers.custos]
name = "custos"
base_url = "$CUSTOS_URL/v1"
env_key = "CUSTOS_API_KEY"
wire_api = "responses"
EOF
(cd "$tmp/work" && CODEX_HOME="$tmp/codex" CUSTOS_API_KEY="$codex_key" timeout 180 "$codex" exec --skip-git-repo-check \
	"My deploy token is $token. Count its characters: run it through wc." </dev/null >"$tmp/codex.out" 2>&1) || true
check "Codex ran the tool call with the token restored" grep -qF "printf %s $token | wc -c" "$tmp/codex.out"
check "Codex sent the command's output back and printed the answer" grep -q 'The command printed: .*40' "$tmp/codex.out"

echo "== Claude Code: claude -p (Messages API, streamed)"
(cd "$tmp/work" && ANTHROPIC_BASE_URL="$CUSTOS_URL" ANTHROPIC_AUTH_TOKEN="$claude_key" CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 \
	DISABLE_AUTOUPDATER=1 timeout 180 "$claude" -p --model claude-sonnet-4-5 "My deploy token is $token. Reply briefly." \
	</dev/null >"$tmp/claude.out" 2>&1) || true
check "Claude Code got the token back restored" grep -q "I saw .*$token" "$tmp/claude.out"

echo "== what the provider received"
n=$(wc -l <"$tmp/seen.jsonl")
check "the provider received $n requests (3 or more)" test "$n" -ge 3
check "no request the provider received holds the token" lacks -F "$token" "$tmp/seen.jsonl"
check "the provider received [[SECRET_1]] in its place" grep -qF '[[SECRET_1]]' "$tmp/seen.jsonl"
"$tmp/custos" usage >"$tmp/usage.txt" && cat "$tmp/usage.txt"

if [ "$failed" -gt 0 ]; then
	echo "agentcheck: $failed check(s) failed; the agents' output:"
	cat "$tmp/codex.out" "$tmp/claude.out"
	exit 1
fi
echo "agentcheck: all checks passed"

#!/usr/bin/env bash
# Starts (or stops) throwaway PostgreSQL and Redis servers on loopback for the
# tests, installing them from Debian's packages when missing. No Docker.
#
#   eval "$(scripts/services.sh start)"   # exports CUSTOS_TEST_POSTGRES_URL, CUSTOS_TEST_REDIS_URL
#   scripts/services.sh stop
#
# Everything lives in $CUSTOS_SERVICES_DIR (default /tmp/custos-services).
set -euo pipefail
dir=${CUSTOS_SERVICES_DIR:-/tmp/custos-services}
log() { echo "services: $*" >&2; }

pg_bin() {
	local d
	d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
	[ -n "$d" ] && [ -x "$d/initdb" ] && echo "$d"
}

install() {
	if [ -z "$(pg_bin)" ] || ! command -v redis-server >/dev/null; then
		log "installing postgresql and redis-server from Debian's packages"
		local sudo=""
		[ "$(id -u)" -eq 0 ] || sudo="sudo"
		$sudo apt-get update -qq >&2
		DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql redis-server >&2
	fi
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()' 2>/dev/null ||
		echo $((20000 + RANDOM % 20000))
}

start() {
	install
	stop >/dev/null 2>&1 || true
	mkdir -p "$dir"
	chmod 0755 "$dir"
	local bin pgport rport pw
	bin=$(pg_bin)
	pgport=$(free_port)
	rport=$(free_port)
	pw=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')

	# PostgreSQL: its own cluster in $dir/pg, owned by the postgres user.
	local run=()
	if [ "$(id -u)" -eq 0 ]; then run=(runuser -u postgres --); fi
	mkdir -p "$dir/pg"
	[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir/pg"
	printf '%s\n' "$pw" > "$dir/pgpass"
	[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir/pgpass"
	"${run[@]}" "$bin/initdb" -D "$dir/pg/data" -U postgres --auth=scram-sha-256 --pwfile="$dir/pgpass" -E UTF8 >"$dir/initdb.log" 2>&1 ||
		{ cat "$dir/initdb.log" >&2; exit 1; }
	"${run[@]}" "$bin/pg_ctl" -D "$dir/pg/data" -l "$dir/pg/server.log" -w -t 60 \
		-o "-c listen_addresses=127.0.0.1 -c port=$pgport -c unix_socket_directories=$dir/pg -c max_connections=300 -c fsync=on" start >&2
	echo "$pgport" > "$dir/pg.port"

	# Redis: no persistence, loopback only.
	redis-server --bind 127.0.0.1 --port "$rport" --save '' --appendonly no --daemonize yes \
		--pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --dir "$dir" >&2
	for _ in $(seq 50); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done

	cat > "$dir/env" <<ENV
export CUSTOS_TEST_POSTGRES_URL='postgres://postgres:$pw@127.0.0.1:$pgport/postgres?sslmode=disable'
export CUSTOS_TEST_REDIS_URL='redis://127.0.0.1:$rport/0'
export CUSTOS_TEST_PG_CTL='${run[*]:+${run[*]} }$bin/pg_ctl -D $dir/pg/data -l $dir/pg/server.log -w -t 60 -o "-c listen_addresses=127.0.0.1 -c port=$pgport -c unix_socket_directories=$dir/pg -c max_connections=300"'
ENV
	log "postgresql on 127.0.0.1:$pgport, redis on 127.0.0.1:$rport (env in $dir/env)"
	cat "$dir/env"
}

stop() {
	local bin
	bin=$(pg_bin || true)
	if [ -n "$bin" ] && [ -f "$dir/pg/data/postmaster.pid" ]; then
		local run=()
		if [ "$(id -u)" -eq 0 ]; then run=(runuser -u postgres --); fi
		"${run[@]}" "$bin/pg_ctl" -D "$dir/pg/data" -m fast -w stop >&2 || true
	fi
	if [ -f "$dir/redis.pid" ]; then
		kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
	fi
	rm -rf "$dir"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac

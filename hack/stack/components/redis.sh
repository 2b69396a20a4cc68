#!/usr/bin/env bash
# Redis from Debian, password-protected, on 127.0.0.1 and the bridge; no persistence.

redis_up() {
  step "Redis 127.0.0.1:$REDIS_PORT and $LP_BRIDGE_IP:$REDIS_PORT"
  already redis && return
  command -v redis-server >/dev/null || die "redis-server is not installed: run make tools"
  port_free "$REDIS_PORT"
  local dir="$LP_RUN_DIR/redis"
  mkdir -p "$dir" && chmod 700 "$dir"
  cat >"$dir/redis.conf" <<EOT
bind 127.0.0.1 $LP_BRIDGE_IP
port $REDIS_PORT
protected-mode yes
requirepass $(cat "$PKI/redis.password")
dir $dir
save ""
appendonly no
daemonize no
EOT
  chmod 600 "$dir/redis.conf"
  launch redis redis-server "$dir/redis.conf"
  redis_wait
  done_step
}
redis_wait() { wait_for redis 30 redis_status; }
redis_status() { [[ "$(REDISCLI_AUTH=$(cat "$PKI/redis.password") redis-cli -p "$REDIS_PORT" PING)" == PONG ]]; }
redis_down() { stop_process redis TERM; }
redis_version() { redis-server --version 2>/dev/null | grep -o 'v=[0-9.]*' | cut -c3-; }
redis_address() { echo "127.0.0.1:$REDIS_PORT, $LP_BRIDGE_IP:$REDIS_PORT"; }

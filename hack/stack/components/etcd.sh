#!/usr/bin/env bash
# etcd: the API server's store, on 127.0.0.1 only, its data in the run dir.

etcd_up() {
  step "etcd 127.0.0.1:$ETCD_PORT"
  already etcd && return
  port_free "$ETCD_PORT"
  port_free "$ETCD_PEER_PORT"
  mkdir -p "$LP_RUN_DIR/etcd" && chmod 700 "$LP_RUN_DIR/etcd"
  launch etcd etcd --name local --data-dir "$LP_RUN_DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "local=http://127.0.0.1:$ETCD_PEER_PORT" \
    --listen-metrics-urls "" --quota-backend-bytes 4294967296 --unsafe-no-fsync
  etcd_wait
  done_step
}
etcd_wait() { wait_for etcd 30 etcd_status; }
etcd_status() { [[ "$(curl -fsS "http://127.0.0.1:$ETCD_PORT/health")" == *'"health":"true"'* ]]; }
etcd_down() { stop_process etcd TERM; }
etcd_version() { etcd --version 2>/dev/null | awk '/etcd Version/{print $3}'; }
etcd_address() { echo "http://127.0.0.1:$ETCD_PORT"; }

#!/usr/bin/env bash
# kube-scheduler (the node's pods are scheduled for real), its own static-token identity.

kube_scheduler_up() {
  step "kube-scheduler 127.0.0.1:$SCHEDULER_PORT"
  already kube-scheduler && return
  port_free "$SCHEDULER_PORT"
  kubeconfig_for "$LP_RUN_DIR/scheduler.kubeconfig" system:kube-scheduler
  launch kube-scheduler kube-scheduler --kubeconfig "$LP_RUN_DIR/scheduler.kubeconfig" \
    --authentication-kubeconfig "$LP_RUN_DIR/scheduler.kubeconfig" --authorization-kubeconfig "$LP_RUN_DIR/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$SCHEDULER_PORT" --leader-elect=false
  kube_scheduler_wait
  done_step
}
kube_scheduler_wait() { wait_for kube-scheduler 60 kube_scheduler_status; }
kube_scheduler_status() { curl -fsSk "https://127.0.0.1:$SCHEDULER_PORT/healthz"; }
kube_scheduler_down() { stop_process kube-scheduler TERM; }
kube_scheduler_version() { kube-scheduler --version 2>/dev/null | awk '{print $2}'; }
kube_scheduler_address() { echo "https://127.0.0.1:$SCHEDULER_PORT"; }

#!/usr/bin/env bash
# kube-controller-manager with every controller; once it runs, the CRDs (project and
# third-party) and the stack's RBAC are applied (addons.sh).

kube_controller_manager_up() {
  step "kube-controller-manager 127.0.0.1:$KCM_PORT"
  if ! already kube-controller-manager; then
    port_free "$KCM_PORT"
    kubeconfig_for "$LP_RUN_DIR/kcm.kubeconfig" system:kube-controller-manager
    launch kube-controller-manager kube-controller-manager \
      --kubeconfig "$LP_RUN_DIR/kcm.kubeconfig" \
      --bind-address 127.0.0.1 --secure-port "$KCM_PORT" \
      --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
      --use-service-account-credentials=true \
      --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
      --service-cluster-ip-range "$LP_SERVICE_CIDR" \
      --leader-elect=false --controllers '*'
    kube_controller_manager_wait
    done_step
  fi
  install_crds
  # A node stopped without its stack (or an older run) may have left the metrics API registered.
  # Not while a node runs: a stack-up without NODE=1 (the integration tests' own) beside a
  # running node would take its metrics API away, and with it every HPA's CPU figure.
  wanted kubelet || running kubelet || node_metrics_unregister
}
kube_controller_manager_wait() { wait_for kube-controller-manager 60 kube_controller_manager_status; }
kube_controller_manager_status() { curl -fsSk "https://127.0.0.1:$KCM_PORT/healthz"; }
kube_controller_manager_down() { stop_process kube-controller-manager TERM; }
kube_controller_manager_version() { kube-controller-manager --version 2>/dev/null | awk '{print $2}'; }
kube_controller_manager_address() { echo "https://127.0.0.1:$KCM_PORT"; }

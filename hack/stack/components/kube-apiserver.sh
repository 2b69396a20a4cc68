#!/usr/bin/env bash
# kube-apiserver on the stack's bridge address (pods reach it there), RBAC and the Node
# authorizer, static tokens for the admin and the control-plane identities. An audit log at
# Metadata level of the operator's ServiceAccount only (logs/audit.log): the API server's own
# request metrics have no client label, and `make bench-operator` counts the operator's
# requests by verb and resource from it.

OPERATOR_SA_USER=system:serviceaccount:logpipeline-system:logpipeline-operator

write_audit_policy() {
  cat >"$LP_RUN_DIR/audit-policy.yaml" <<EOT
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
    users: ["$OPERATOR_SA_USER"]
  - level: None
EOT
}

kube_apiserver_up() {
  step "kube-apiserver https://$LP_BRIDGE_IP:$APISERVER_PORT"
  already kube-apiserver && return
  port_free "$APISERVER_PORT"
  write_audit_policy
  launch kube-apiserver kube-apiserver \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address "$LP_BRIDGE_IP" --advertise-address "$LP_BRIDGE_IP" --secure-port "$APISERVER_PORT" \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" --token-auth-file "$PKI/tokens.csv" \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --service-cluster-ip-range "$LP_SERVICE_CIDR" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --kubelet-preferred-address-types InternalIP \
    --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
    --requestheader-client-ca-file "$PKI/front-proxy-ca.crt" --requestheader-allowed-names front-proxy-client \
    --requestheader-extra-headers-prefix X-Remote-Extra- --requestheader-group-headers X-Remote-Group \
    --requestheader-username-headers X-Remote-User \
    --proxy-client-cert-file "$PKI/front-proxy-client.crt" --proxy-client-key-file "$PKI/front-proxy-client.key" \
    --enable-aggregator-routing=true --profiling=false --allow-privileged=false \
    --audit-policy-file "$LP_RUN_DIR/audit-policy.yaml" --audit-log-path "$LP_RUN_DIR/logs/audit.log" \
    --audit-log-format json --audit-log-maxsize 200 --audit-log-maxbackup 1
  kube_apiserver_wait
  done_step
}
kube_apiserver_wait() { wait_for kube-apiserver 60 kube_apiserver_status; }
kube_apiserver_status() {
  curl -fsS --cacert "$PKI/ca.crt" -H "Authorization: Bearer $(token_for admin)" "https://$LP_BRIDGE_IP:$APISERVER_PORT/readyz"
}
kube_apiserver_down() { stop_process kube-apiserver TERM; }
kube_apiserver_version() { kube-apiserver --version 2>/dev/null | awk '{print $2}'; }
kube_apiserver_address() { echo "https://$LP_BRIDGE_IP:$APISERVER_PORT"; }

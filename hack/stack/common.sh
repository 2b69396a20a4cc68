#!/usr/bin/env bash
# The stack's common library, sourced by stack.sh and by every file in components/: process
# handling by PID, the bridge, the PKI and kubeconfigs, and the one writer of the stack's
# facts (stack.env and stack.json). A component file defines, for its component NAME (with
# dashes as underscores): NAME_up (start, then NAME_wait), NAME_wait (its readiness),
# NAME_down, NAME_status (healthy now: one probe), NAME_version and NAME_address.

pidfile() { echo "$LP_RUN_DIR/pids/$1.pid"; }
logfile() { echo "$LP_RUN_DIR/logs/$1.log"; }

# running NAME: the recorded PID is alive (and is not a recycled PID of another program).
running() {
  local pf pid
  pf=$(pidfile "$1")
  [ -f "$pf" ] || return 1
  pid=$(cat "$pf")
  [ -d "/proc/$pid" ] || return 1
  [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != "Z" ]
}

# port_free PORT: fail with the port's owner when something else listens there.
port_free() {
  local port="$1" owner
  owner=$(ss -ltnpH "sport = :$port" 2>/dev/null | head -1)
  [ -z "$owner" ] && return 0
  die "port $port is already taken: $(echo "$owner" | grep -o 'users:.*' || echo "$owner"). Stop that process, or run the stack on other ports with LP_PORT_OFFSET=N"
}

# launch NAME CMD...: start a process in its own session, record its PID.
launch() {
  local name="$1"
  shift
  mkdir -p "$LP_RUN_DIR/pids" "$LP_RUN_DIR/logs"
  setsid "$@" >>"$(logfile "$name")" 2>&1 </dev/null &
  echo $! >"$(pidfile "$name")"
}

# wait_for NAME SECONDS CMD...: poll CMD until it succeeds; fail naming the component's log.
wait_for() {
  local name="$1" timeout="$2" i
  shift 2
  for ((i = 0; i < timeout * 4; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    running "$name" || die "$name exited during start-up" "$(logfile "$name")"
    sleep 0.25
  done
  die "$name was not ready after ${timeout}s" "$(logfile "$name")"
}

# already NAME: true (and says so) when the component runs already.
already() {
  running "$1" || return 1
  printf '    already running (pid %s)\n' "$(cat "$(pidfile "$1")")" >&2
}

# stop_process NAME SIGNAL: signal the recorded PID, wait for it to exit, then SIGKILL.
stop_process() {
  local name="$1" sig="$2" pf pid i
  pf=$(pidfile "$name")
  [ -f "$pf" ] || return 0
  pid=$(cat "$pf")
  if running "$name"; then
    printf '==> stopping %s (pid %s)\n' "$name" "$pid" >&2
    kill "-$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < 120; i++)); do running "$name" || break; sleep 0.25; done
    if running "$name"; then
      printf '    still running after 30s: SIGKILL\n' >&2
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 40; i++)); do running "$name" || break; sleep 0.25; done
    fi
  fi
  rm -f "$pf"
}

tcp_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# ---------------------------------------------------------------------------- network
ensure_bridge() {
  step "bridge $LP_BRIDGE ($LP_BRIDGE_IP/$LP_BRIDGE_PREFIX)"
  if ! ip link show "$LP_BRIDGE" >/dev/null 2>&1; then
    ip link add "$LP_BRIDGE" type bridge || die "could not create bridge $LP_BRIDGE (needs root / CAP_NET_ADMIN)"
  fi
  # (Never `cmd | grep -q` under pipefail: grep's early exit can fail the pipeline.)
  [[ "$(ip -4 -o addr show dev "$LP_BRIDGE")" == *"inet $LP_BRIDGE_IP/"* ]] || ip addr add "$LP_BRIDGE_IP/$LP_BRIDGE_PREFIX" dev "$LP_BRIDGE"
  ip link set "$LP_BRIDGE" up
  done_step
}

remove_bridge() {
  if ip link show "$LP_BRIDGE" >/dev/null 2>&1; then ip link del "$LP_BRIDGE" 2>/dev/null || true; fi
}

# ---------------------------------------------------------------------------- PKI
ensure_pki() {
  step "certificates and tokens ($PKI)"
  if [ -f "$PKI/.complete" ]; then skip_step; return; fi
  mkdir -p "$PKI" && chmod 700 "$PKI"
  local log="$LP_RUN_DIR/logs/pki.log"
  (
    cd "$PKI"
    set -e
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 -subj "/CN=logpipeline-local-ca"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout front-proxy-ca.key -out front-proxy-ca.crt -days 3650 -subj "/CN=logpipeline-front-proxy-ca"
    cat >apiserver.ext <<EOT
subjectAltName=IP:$LP_BRIDGE_IP,IP:127.0.0.1,IP:$LP_SERVICE_API_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
extendedKeyUsage=serverAuth
EOT
    sign() { # sign NAME SUBJECT CA EXTFILE
      openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2"
      openssl x509 -req -in "$1.csr" -CA "$3.crt" -CAkey "$3.key" -CAcreateserial -out "$1.crt" -days 3650 ${4:+-extfile "$4"}
    }
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    sign apiserver "/CN=kube-apiserver" ca apiserver.ext
    sign apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" ca client.ext
    sign front-proxy-client "/CN=front-proxy-client" front-proxy-ca client.ext
    openssl genrsa -out sa.key 2048
    openssl rsa -in sa.key -pubout -out sa.pub
    # Static tokens: admin, and one identity per control-plane component (RBAC has roles for them).
    tok() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
    {
      echo "$(tok),admin,admin,system:masters"
      echo "$(tok),system:kube-controller-manager,kcm"
      echo "$(tok),system:kube-scheduler,scheduler"
      echo "$(tok),strimzi-topic-operator,strimzi-topic-operator"
    } >tokens.csv
    random_secret >postgres.password
    random_secret >kafka-scram.password
    random_secret >redis.password
    rm -f ./*.csr ./*.srl
  ) >"$log" 2>&1 || die "certificate generation failed" "$log"
  touch "$PKI/.complete"
  done_step
}

random_secret() { head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

token_for() { awk -F, -v u="$1" '$2==u{print $1}' "$PKI/tokens.csv"; }

# write_kubeconfig FILE NAME CREDENTIALS: a kubeconfig for the stack's API server; CREDENTIALS
# is the user's fields as flow YAML (a token, or a client certificate and key).
write_kubeconfig() {
  cat >"$1" <<EOT
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://$LP_BRIDGE_IP:$APISERVER_PORT
    certificate-authority: $PKI/ca.crt
users:
- name: $2
  user: $3
contexts:
- name: local
  context: {cluster: local, user: $2}
current-context: local
EOT
  chmod 600 "$1"
}

# kubeconfig_for FILE USER: a kubeconfig for one of the static-token identities.
kubeconfig_for() { write_kubeconfig "$1" "$2" "{token: $(token_for "$2")}"; }

kubectl_admin() { kubectl --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }

ensure_namespace() {
  kubectl_admin create namespace "$1" --dry-run=client -o yaml | kubectl_admin apply --server-side -f - >/dev/null
}

strimzi_enabled() { [ "$LP_STRIMZI" != off ] && [ -f "$TO_HOME/.complete" ]; }

# ---------------------------------------------------------------------------- facts
# write_facts: the one writer of what clients need to know about the stack. Each fact is
# written once, here, and comes out in both forms: stack.env (shell, `source` it) and
# stack.json (the tests read it). A fact without an env name is in the JSON only; a dotted
# JSON name nests one level.
write_facts() {
  local pgpw redispw strimzi=false
  pgpw=$(cat "$PKI/postgres.password")
  redispw=$(cat "$PKI/redis.password")
  strimzi_enabled && strimzi=true
  local facts=(
    # ENV_NAME             JSON_NAME                   VALUE (type: s string, b boolean)
    "-                     runDir                      s $LP_RUN_DIR"
    "KUBECONFIG            kubeconfig                  s $KUBECONFIG_ADMIN"
    "-                     apiServer                   s https://$LP_BRIDGE_IP:$APISERVER_PORT"
    "-                     auditLog                    s $LP_RUN_DIR/logs/audit.log"
    "LP_KAFKA_BOOTSTRAP    kafkaBootstrap              s 127.0.0.1:$KAFKA_PORT"
    "LP_KAFKA_BOOTSTRAP_BRIDGE kafkaBootstrapBridge    s $LP_BRIDGE_IP:$KAFKA_BRIDGE_PORT"
    "-                     kafkaSasl.bootstrap         s 127.0.0.1:$KAFKA_SASL_PORT"
    "-                     kafkaSasl.mechanism         s SCRAM-SHA-512"
    "-                     kafkaSasl.username          s logpipeline"
    "-                     kafkaSasl.passwordFile      s $PKI/kafka-scram.password"
    "LP_PG_URL             postgresUrl                 s postgres://postgres:$pgpw@127.0.0.1:$POSTGRES_PORT/postgres"
    "LP_REDIS_URL          redisUrl                    s redis://:$redispw@127.0.0.1:$REDIS_PORT"
    "LP_STRIMZI_ENABLED    strimzi.enabled             b $strimzi"
    "LP_STRIMZI_NAMESPACE  strimzi.namespace           s $STRIMZI_NAMESPACE"
    "LP_STRIMZI_CLUSTER    strimzi.cluster             s $STRIMZI_CLUSTER"
    "LP_BRIDGE_IP          bridgeIp                    s $LP_BRIDGE_IP"
  )
  local f env_name json_name type value json="" group="" key
  umask 077
  : >"$LP_RUN_DIR/stack.env"
  for f in "${facts[@]}"; do
    read -r env_name json_name type value <<<"$f"
    [ "$env_name" = - ] || printf 'export %s=%s\n' "$env_name" "$value" >>"$LP_RUN_DIR/stack.env"
    [ "$type" = b ] || value="\"$value\""
    key="$json_name"
    if [[ "$json_name" == *.* ]]; then
      key="${json_name#*.}"
      if [ "$group" != "${json_name%%.*}" ]; then
        [ -n "$group" ] && json+=" },"$'\n'
        group="${json_name%%.*}"
        json+="  \"$group\": {"
      else
        json+=","
      fi
      json+=" \"$key\": $value"
      continue
    fi
    [ -n "$group" ] && json+=" },"$'\n' && group=""
    json+="  \"$key\": $value,"$'\n'
  done
  [ -n "$group" ] && json+=" },"$'\n'
  printf '{\n%s\n}\n' "${json%,$'\n'}" >"$LP_RUN_DIR/stack.json"
}

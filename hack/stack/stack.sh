#!/usr/bin/env bash
# The local stack of real components, as processes started and stopped by PID:
#   etcd → kube-apiserver → kube-controller-manager → Kafka (KRaft) → Strimzi topic operator
#   → PostgreSQL → Redis, then the project's and the third-party CRDs.
#   With LP_NODE=1 (make stack-up NODE=1), the node too: kube-scheduler, containerd, kubelet,
#   kube-proxy (hack/stack/node.sh), so pods run for real.
# Usage: stack.sh up | down | status [--quiet] | env | json | stop NAME | start NAME
#   LP_COMPONENTS="kafka postgres redis" brings up only those (a data-services-only instance).
# Addresses and ports: hack/stack/config.sh (and README.md). Logs, PIDs, data: $LP_RUN_DIR.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
source "$HACK_DIR/stack/config.sh"
source "$HACK_DIR/stack/node.sh"

LP_RETRY_HINT="make stack-down && make stack-up (logs: $LP_RUN_DIR/logs)"
KAFKA_HOME="$LP_CACHE/kafka-$KAFKA_VERSION"
TO_HOME="$LP_CACHE/strimzi-topic-operator-$STRIMZI_API_VERSION"
PG_BIN="${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}"
ALL_COMPONENTS=(etcd kube-apiserver kube-controller-manager kafka strimzi-topic-operator postgres redis)
NODE_COMPONENTS=(kube-scheduler containerd kubelet kube-proxy)
[ "${LP_NODE:-0}" = 1 ] && ALL_COMPONENTS+=("${NODE_COMPONENTS[@]}")
read -r -a COMPONENTS <<<"${LP_COMPONENTS:-${ALL_COMPONENTS[*]}}"
wanted() { [[ " ${COMPONENTS[*]} " == *" $1 "* ]]; }
export PATH="$LP_BIN:$PATH"

pidfile() { echo "$LP_RUN_DIR/pids/$1.pid"; }
logfile() { echo "$LP_RUN_DIR/logs/$1.log"; }

# running NAME: the recorded PID is alive (and is not a recycled PID of another program).
running() {
  local pf pid
  pf=$(pidfile "$1")
  [ -f "$pf" ] || return 1
  pid=$(cat "$pf")
  [ -d "/proc/$pid" ] || return 1
  [ "$(cat "/proc/$pid/stat" 2>/dev/null | awk '{print $3}')" != "Z" ]
}

# port_free PORT [ADDR]: fail with the port's owner when something else listens there.
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

already() { printf '    already running (pid %s)\n' "$(cat "$(pidfile "$1")")" >&2; }

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
    cat >apiserver.ext <<EOF
subjectAltName=IP:$LP_BRIDGE_IP,IP:127.0.0.1,IP:$LP_SERVICE_API_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
extendedKeyUsage=serverAuth
EOF
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
    head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >postgres.password
    head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >kafka-scram.password
    head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >redis.password
    rm -f ./*.csr ./*.srl
  ) >"$log" 2>&1 || die "certificate generation failed" "$log"
  touch "$PKI/.complete"
  done_step
}

token_for() { awk -F, -v u="$1" '$2==u{print $1}' "$PKI/tokens.csv"; }

# write_kubeconfig FILE NAME CREDENTIALS: a kubeconfig for the stack's API server; CREDENTIALS
# is the user's fields as flow YAML (a token, or a client certificate and key).
write_kubeconfig() {
  cat >"$1" <<EOF
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
EOF
  chmod 600 "$1"
}

# kubeconfig_for FILE USER: a kubeconfig for one of the static-token identities.
kubeconfig_for() { write_kubeconfig "$1" "$2" "{token: $(token_for "$2")}"; }

# ---------------------------------------------------------------------------- components
start_etcd() {
  step "etcd 127.0.0.1:$ETCD_PORT"
  if running etcd; then already etcd; return; fi
  port_free "$ETCD_PORT"
  port_free "$ETCD_PEER_PORT"
  mkdir -p "$LP_RUN_DIR/etcd" && chmod 700 "$LP_RUN_DIR/etcd"
  launch etcd etcd --name local --data-dir "$LP_RUN_DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "local=http://127.0.0.1:$ETCD_PEER_PORT" \
    --listen-metrics-urls "" --quota-backend-bytes 4294967296 --unsafe-no-fsync
  wait_for etcd 30 sh -c "curl -fsS http://127.0.0.1:$ETCD_PORT/health | grep -q '\"health\":\"true\"'"
  done_step
}

start_apiserver() {
  step "kube-apiserver https://$LP_BRIDGE_IP:$APISERVER_PORT"
  if running kube-apiserver; then already kube-apiserver; return; fi
  port_free "$APISERVER_PORT"
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
    --enable-aggregator-routing=true --profiling=false --allow-privileged=false
  wait_for kube-apiserver 60 curl -fsS --cacert "$PKI/ca.crt" -H "Authorization: Bearer $(token_for admin)" \
    "https://$LP_BRIDGE_IP:$APISERVER_PORT/readyz"
  done_step
}

start_controller_manager() {
  step "kube-controller-manager 127.0.0.1:$KCM_PORT"
  if running kube-controller-manager; then already kube-controller-manager; return; fi
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
  wait_for kube-controller-manager 60 curl -fsSk "https://127.0.0.1:$KCM_PORT/healthz"
  done_step
}

kafka_java() { "${KAFKA_JAVA:-java}" "$@"; }

start_kafka() {
  step "Kafka $KAFKA_VERSION 127.0.0.1:$KAFKA_PORT (pods: $LP_BRIDGE_IP:$KAFKA_BRIDGE_PORT)"
  if running kafka; then already kafka; return; fi
  [ -f "$KAFKA_HOME/.complete" ] || die "Kafka is not installed in $KAFKA_HOME: run make tools"
  port_free "$KAFKA_PORT"
  port_free "$KAFKA_BRIDGE_PORT"
  port_free "$KAFKA_CONTROLLER_PORT"
  port_free "$KAFKA_SASL_PORT"
  local dir="$LP_RUN_DIR/kafka"
  mkdir -p "$dir/data"
  cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,BRIDGE://$LP_BRIDGE_IP:$KAFKA_BRIDGE_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT,SASL://127.0.0.1:$KAFKA_SASL_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,BRIDGE://$LP_BRIDGE_IP:$KAFKA_BRIDGE_PORT,SASL://127.0.0.1:$KAFKA_SASL_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,BRIDGE:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL:SASL_PLAINTEXT
# A SASL/SCRAM listener, so the clients' authentication is tested against the real broker.
listener.name.sasl.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.partitions=1
auto.create.topics.enable=false
# One broker: internal topics and transactions must work with replication factor 1.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
  cat >"$dir/log4j2.properties" <<'EOF'
rootLogger.level=INFO
rootLogger.appenderRef.stdout.ref=STDOUT
appender.stdout.type=Console
appender.stdout.name=STDOUT
appender.stdout.layout.type=PatternLayout
appender.stdout.layout.pattern=[%d] %p %m (%c)%n
logger.kafka.name=kafka
logger.kafka.level=INFO
logger.state.name=state.change.logger
logger.state.level=WARN
EOF
  if [ ! -f "$dir/data/meta.properties" ]; then
    run_logged "$LP_RUN_DIR/logs/kafka-format.log" kafka_java -cp "$KAFKA_HOME/libs/*" kafka.tools.StorageTool \
      format --standalone -t "$(kafka_java -cp "$KAFKA_HOME/libs/*" kafka.tools.StorageTool random-uuid)" -c "$dir/server.properties"
  fi
  launch kafka "${KAFKA_JAVA:-java}" -Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$dir/log4j2.properties" -cp "$KAFKA_HOME/libs/*" kafka.Kafka "$dir/server.properties"
  wait_for kafka 60 tcp_open 127.0.0.1 "$KAFKA_PORT"
  # A real metadata request through the broker's client listener.
  wait_for kafka 60 kafka_java -cp "$KAFKA_HOME/libs/*" org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "127.0.0.1:$KAFKA_PORT" --list
  # The SCRAM user of the SASL listener (stored in the cluster's metadata; idempotent).
  [ -f "$PKI/kafka-scram.password" ] || head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$PKI/kafka-scram.password"
  run_logged "$LP_RUN_DIR/logs/kafka-scram.log" kafka_java -cp "$KAFKA_HOME/libs/*" kafka.admin.ConfigCommand \
    --bootstrap-server "127.0.0.1:$KAFKA_PORT" --alter --entity-type users --entity-name logpipeline \
    --add-config "SCRAM-SHA-512=[password=$(cat "$PKI/kafka-scram.password")]"
  done_step
}

start_strimzi() {
  step "Strimzi topic operator $STRIMZI_API_VERSION (namespace $STRIMZI_NAMESPACE, cluster $STRIMZI_CLUSTER)"
  if [ "$LP_STRIMZI" = off ]; then skip_step "disabled (LP_STRIMZI=off)"; return; fi
  if [ ! -f "$TO_HOME/.complete" ]; then
    printf '    skipped — not installed (needs ../shared/strimzi or LP_STRIMZI_DIR at make tools); use kafka.mode: external\n' >&2
    return
  fi
  if running strimzi-topic-operator; then already strimzi-topic-operator; return; fi
  local java21
  java21=$(find_java21) || die "Strimzi's topic operator needs Java 21 or newer; none found under /usr/lib/jvm (set JAVA21_HOME)"
  port_free "$STRIMZI_HEALTH_PORT"
  kubeconfig_for "$LP_RUN_DIR/strimzi.kubeconfig" strimzi-topic-operator
  KUBECONFIG="$LP_RUN_DIR/strimzi.kubeconfig" STRIMZI_NAMESPACE="$STRIMZI_NAMESPACE" \
    STRIMZI_KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:$KAFKA_PORT" \
    STRIMZI_RESOURCE_LABELS="strimzi.io/cluster=$STRIMZI_CLUSTER" \
    launch strimzi-topic-operator "$java21" -Xms64m -Xmx256m -cp "$TO_HOME/libs/*" io.strimzi.operator.topic.Main
  wait_for strimzi-topic-operator 90 curl -fsS "http://127.0.0.1:$STRIMZI_HEALTH_PORT/ready"
  done_step
}

# PostgreSQL refuses to run as root: as root, run it as the `postgres` user (setpriv execs,
# so the recorded PID is the server's own).
PG_AS=()
[ "$(id -u)" = 0 ] && PG_AS=(setpriv --reuid=postgres --regid=postgres --init-groups)

start_postgres() {
  step "PostgreSQL 127.0.0.1:$POSTGRES_PORT and $LP_BRIDGE_IP:$POSTGRES_PORT"
  if running postgres; then already postgres; return; fi
  [ -x "$PG_BIN/postgres" ] || die "PostgreSQL is not installed (no $PG_BIN/postgres): run make tools"
  port_free "$POSTGRES_PORT"
  local dir="$LP_RUN_DIR/postgres"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    rm -rf "$dir" && mkdir -p "$dir/data" "$dir/socket"
    cp "$PKI/postgres.password" "$dir/pwfile"
    [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$dir"
    chmod 700 "$dir/data"
    run_logged "$LP_RUN_DIR/logs/postgres-initdb.log" "${PG_AS[@]}" "$PG_BIN/initdb" -D "$dir/data" -U postgres \
      --pwfile="$dir/pwfile" --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8
    rm -f "$dir/pwfile"
    # Pods connect from the bridge network (full-node issue): password auth there too.
    echo "host all all $LP_BRIDGE_IP/$LP_BRIDGE_PREFIX scram-sha-256" >>"$dir/data/pg_hba.conf"
  fi
  launch postgres "${PG_AS[@]}" "$PG_BIN/postgres" -D "$dir/data" -p "$POSTGRES_PORT" \
    -c listen_addresses="127.0.0.1,$LP_BRIDGE_IP" -c unix_socket_directories="$dir/socket" \
    -c max_connections=200 -c shared_buffers=256MB -c fsync=on -c logging_collector=off
  wait_for postgres 60 "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$POSTGRES_PORT"
  done_step
}

start_redis() {
  step "Redis 127.0.0.1:$REDIS_PORT and $LP_BRIDGE_IP:$REDIS_PORT"
  if running redis; then already redis; return; fi
  command -v redis-server >/dev/null || die "redis-server is not installed: run make tools"
  port_free "$REDIS_PORT"
  local dir="$LP_RUN_DIR/redis"
  mkdir -p "$dir" && chmod 700 "$dir"
  cat >"$dir/redis.conf" <<EOF
bind 127.0.0.1 $LP_BRIDGE_IP
port $REDIS_PORT
protected-mode yes
requirepass $(cat "$PKI/redis.password")
dir $dir
save ""
appendonly no
daemonize no
EOF
  chmod 600 "$dir/redis.conf"
  launch redis redis-server "$dir/redis.conf"
  wait_for redis 30 sh -c "REDISCLI_AUTH=\$(cat '$PKI/redis.password') redis-cli -p $REDIS_PORT PING | grep -q PONG"
  done_step
}

# ---------------------------------------------------------------------------- CRDs and RBAC
install_crds() {
  step "CRDs (project + KafkaTopic + ServiceMonitor + PrometheusRule) and stack RBAC"
  local k=(kubectl --kubeconfig "$KUBECONFIG_ADMIN")
  local files=("$REPO_ROOT"/crds/*.yaml "$LP_CACHE/crds/strimzi-$STRIMZI_API_VERSION"/*.yaml
    "$LP_CACHE/crds/prometheus-operator-$PROMETHEUS_OPERATOR_VERSION"/*.yaml)
  local f
  for f in "${files[@]}"; do
    [ -f "$f" ] || die "CRD file missing: $f (run make tools)"
    run_logged "$LP_RUN_DIR/logs/crds.log" "${k[@]}" apply --server-side --force-conflicts -f "$f"
  done
  run_logged "$LP_RUN_DIR/logs/crds.log" "${k[@]}" wait --for condition=Established --timeout=60s crd --all
  # The topic operator's own identity may touch KafkaTopics in its namespace only.
  ensure_namespace "$STRIMZI_NAMESPACE"
  sed -e "s/__NAMESPACE__/$STRIMZI_NAMESPACE/g" "$HACK_DIR/stack/strimzi-rbac.yaml" \
    | run_logged "$LP_RUN_DIR/logs/crds.log" "${k[@]}" apply --server-side -f -
  done_step "${#files[@]} CRD files"
}

write_env() {
  local pgpw redispw
  pgpw=$(cat "$PKI/postgres.password")
  redispw=$(cat "$PKI/redis.password")
  umask 077
  cat >"$LP_RUN_DIR/stack.env" <<EOF
export KUBECONFIG=$KUBECONFIG_ADMIN
export LP_KAFKA_BOOTSTRAP=127.0.0.1:$KAFKA_PORT
export LP_KAFKA_BOOTSTRAP_BRIDGE=$LP_BRIDGE_IP:$KAFKA_BRIDGE_PORT
export LP_PG_URL=postgres://postgres:$pgpw@127.0.0.1:$POSTGRES_PORT/postgres
export LP_REDIS_URL=redis://:$redispw@127.0.0.1:$REDIS_PORT
export LP_STRIMZI_NAMESPACE=$STRIMZI_NAMESPACE
export LP_STRIMZI_CLUSTER=$STRIMZI_CLUSTER
export LP_STRIMZI_ENABLED=$([ "$LP_STRIMZI" != off ] && [ -f "$TO_HOME/.complete" ] && echo 1 || echo 0)
export LP_BRIDGE_IP=$LP_BRIDGE_IP
EOF
  cat >"$LP_RUN_DIR/stack.json" <<EOF
{
  "runDir": "$LP_RUN_DIR",
  "kubeconfig": "$KUBECONFIG_ADMIN",
  "apiServer": "https://$LP_BRIDGE_IP:$APISERVER_PORT",
  "kafkaBootstrap": "127.0.0.1:$KAFKA_PORT",
  "kafkaBootstrapBridge": "$LP_BRIDGE_IP:$KAFKA_BRIDGE_PORT",
  "kafkaSasl": { "bootstrap": "127.0.0.1:$KAFKA_SASL_PORT", "mechanism": "SCRAM-SHA-512", "username": "logpipeline", "passwordFile": "$PKI/kafka-scram.password" },
  "postgresUrl": "postgres://postgres:$pgpw@127.0.0.1:$POSTGRES_PORT/postgres",
  "redisUrl": "redis://:$redispw@127.0.0.1:$REDIS_PORT",
  "strimzi": { "enabled": $([ "$LP_STRIMZI" != off ] && [ -f "$TO_HOME/.complete" ] && echo true || echo false), "namespace": "$STRIMZI_NAMESPACE", "cluster": "$STRIMZI_CLUSTER" },
  "bridgeIp": "$LP_BRIDGE_IP"
}
EOF
}

ensure_namespace() {
  kubectl --kubeconfig "$KUBECONFIG_ADMIN" create namespace "$1" --dry-run=client -o yaml \
    | kubectl --kubeconfig "$KUBECONFIG_ADMIN" apply --server-side -f - >/dev/null
}

cmd_up() {
  [ "$(id -u)" = 0 ] || die "the stack creates a network bridge and runs PostgreSQL as its own user: run as root (or with sudo)"
  if wanted kube-apiserver; then
    for b in etcd kube-apiserver kube-controller-manager kubectl; do
      command -v "$b" >/dev/null || die "$b is not installed in $LP_BIN: run make tools"
    done
  fi
  mkdir -p "$LP_RUN_DIR/logs" "$LP_RUN_DIR/pids"
  chmod 755 "$LP_RUN_DIR"
  ensure_bridge
  ensure_pki
  if wanted kubelet || wanted kube-proxy; then ensure_node_pki; fi
  kubeconfig_for "$KUBECONFIG_ADMIN" admin
  local c
  for c in "${COMPONENTS[@]}"; do start_one "$c"; done
  write_env
  total_time
  printf '\nstack is up. Use it with:  source %s/stack.env   (kubectl get ns)\n' "$LP_RUN_DIR" >&2
}

# stop NAME SIGNAL: signal the recorded PID, wait for it to exit, then SIGKILL.
stop() {
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

start_one() {
  case "$1" in
    etcd) start_etcd ;;
    kube-apiserver) start_apiserver ;;
    kube-controller-manager)
      start_controller_manager && install_crds
      # A node stopped without its stack (or an older run) may have left the metrics API registered.
      wanted kubelet || node_metrics_unregister
      ;;
    kafka) start_kafka ;;
    strimzi-topic-operator) start_strimzi ;;
    postgres) start_postgres ;;
    redis) start_redis ;;
    kube-scheduler) start_scheduler ;;
    containerd) start_containerd ;;
    kubelet) start_kubelet ;;
    kube-proxy) start_kube_proxy ;;
    *) die "unknown component '$1' (known: ${ALL_COMPONENTS[*]} ${NODE_COMPONENTS[*]})" ;;
  esac
}

# PostgreSQL's fast shutdown is SIGINT; the others stop cleanly on SIGTERM.
stop_one() {
  case "$1" in
    postgres) stop postgres INT ;;
    etcd | kube-apiserver | kube-controller-manager | kafka | strimzi-topic-operator | redis) stop "$1" TERM ;;
    kube-scheduler) stop "$1" TERM ;;
    # A stopped node is gone: its Node object goes too, so the pod garbage collector removes
    # the pods bound to it instead of leaving them (and their namespaces) terminating.
    kubelet) stop kubelet TERM && node_forget ;;
    # Only a stack that ran kube-proxy cleans the packet filter up: kube-proxy's nftables table
    # is one per host, so a stack without a node (an isolated test stack going down) must not
    # remove the rules of the node that is running.
    kube-proxy) if [ -f "$(pidfile kube-proxy)" ]; then stop kube-proxy TERM && node_packet_filter_cleanup; else node_forwarding_off; fi ;;
    containerd) node_teardown && stop containerd TERM ;;
    *) die "unknown component '$1' (known: ${ALL_COMPONENTS[*]} ${NODE_COMPONENTS[*]})" ;;
  esac
}

cmd_down() {
  local i
  # The image builder's daemon (make images), then the node (whether or not LP_NODE is set
  # now): pods, then the control plane.
  [ -f "$LP_RUN_DIR/docker/dockerd.pid" ] && bash "$HACK_DIR/images/build.sh" dockerd-stop
  for ((i = ${#NODE_COMPONENTS[@]} - 1; i >= 0; i--)); do stop_one "${NODE_COMPONENTS[i]}"; done
  local base=(etcd kube-apiserver kube-controller-manager kafka strimzi-topic-operator postgres redis)
  for ((i = ${#base[@]} - 1; i >= 0; i--)); do stop_one "${base[i]}"; done
  if ip link show "$LP_BRIDGE" >/dev/null 2>&1; then ip link del "$LP_BRIDGE" 2>/dev/null || true; fi
  total_time
}

version_of() {
  case "$1" in
    etcd) etcd --version 2>/dev/null | awk '/etcd Version/{print $3}' ;;
    kube-apiserver | kube-controller-manager) "$1" --version 2>/dev/null | awk '{print $2}' ;;
    kafka) echo "$KAFKA_VERSION" ;;
    strimzi-topic-operator) echo "$STRIMZI_API_VERSION" ;;
    postgres) "$PG_BIN/postgres" --version 2>/dev/null | awk '{print $3}' ;;
    redis) redis-server --version 2>/dev/null | grep -o 'v=[0-9.]*' | cut -c3- ;;
    kube-scheduler | kubelet | kube-proxy) "$1" --version 2>/dev/null | awk '{print $2}' ;;
    containerd) containerd --version 2>/dev/null | awk '{print $3}' ;;
  esac
}

address_of() {
  case "$1" in
    etcd) echo "http://127.0.0.1:$ETCD_PORT" ;;
    kube-apiserver) echo "https://$LP_BRIDGE_IP:$APISERVER_PORT" ;;
    kube-controller-manager) echo "https://127.0.0.1:$KCM_PORT" ;;
    kafka) echo "127.0.0.1:$KAFKA_PORT, $LP_BRIDGE_IP:$KAFKA_BRIDGE_PORT, SASL 127.0.0.1:$KAFKA_SASL_PORT" ;;
    strimzi-topic-operator) echo "http://127.0.0.1:$STRIMZI_HEALTH_PORT" ;;
    postgres) echo "127.0.0.1:$POSTGRES_PORT, $LP_BRIDGE_IP:$POSTGRES_PORT" ;;
    redis) echo "127.0.0.1:$REDIS_PORT, $LP_BRIDGE_IP:$REDIS_PORT" ;;
    kube-scheduler) echo "https://127.0.0.1:$SCHEDULER_PORT" ;;
    containerd) echo "unix://$CONTAINERD_SOCK" ;;
    kubelet) echo "https://$LP_BRIDGE_IP:$KUBELET_PORT (node $NODE_NAME)" ;;
    kube-proxy) echo "http://127.0.0.1:$KUBE_PROXY_HEALTHZ_PORT/healthz" ;;
  esac
}

healthy() {
  running "$1" || return 1
  case "$1" in
    etcd) [[ "$(curl -fsS "http://127.0.0.1:$ETCD_PORT/health")" == *'"health":"true"'* ]] ;;
    kube-apiserver) curl -fsS --cacert "$PKI/ca.crt" -H "Authorization: Bearer $(token_for admin)" "https://$LP_BRIDGE_IP:$APISERVER_PORT/readyz" ;;
    kube-controller-manager) curl -fsSk "https://127.0.0.1:$KCM_PORT/healthz" ;;
    kafka) tcp_open 127.0.0.1 "$KAFKA_PORT" ;;
    strimzi-topic-operator) curl -fsS "http://127.0.0.1:$STRIMZI_HEALTH_PORT/ready" ;;
    postgres) "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$POSTGRES_PORT" ;;
    redis) [[ "$(REDISCLI_AUTH=$(cat "$PKI/redis.password") redis-cli -p "$REDIS_PORT" PING)" == PONG ]] ;;
    kube-scheduler) curl -fsSk "https://127.0.0.1:$SCHEDULER_PORT/healthz" ;;
    containerd) ctr_ version ;;
    kubelet) curl -fsS "http://127.0.0.1:$KUBELET_HEALTHZ_PORT/healthz" ;;
    kube-proxy) curl -fsS "http://127.0.0.1:$KUBE_PROXY_HEALTHZ_PORT/healthz" ;;
  esac
}

# status [--quiet]: a table of components; exit 0 only when every expected one is healthy.
cmd_status() {
  trap - ERR # an unhealthy component is the answer, not a failure of this script
  local quiet="${1:-}" c state pid all=0
  [ "$quiet" = --quiet ] || printf '%-25s %-9s %-10s %-8s %s\n' COMPONENT STATE VERSION PID ADDRESS
  for c in "${COMPONENTS[@]}"; do
    pid="-"
    [ -f "$(pidfile "$c")" ] && pid=$(cat "$(pidfile "$c")")
    if [ "$c" = strimzi-topic-operator ] && { [ "$LP_STRIMZI" = off ] || [ ! -f "$TO_HOME/.complete" ]; }; then
      state=disabled
    elif healthy "$c" >/dev/null 2>&1; then
      state=healthy
    elif running "$c"; then
      state=unhealthy
      all=1
    else
      state=stopped
      pid="-"
      all=1
    fi
    [ "$quiet" = --quiet ] || printf '%-25s %-9s %-10s %-8s %s\n' "$c" "$state" "$(version_of "$c")" "$pid" "$(address_of "$c")"
  done
  [ "$quiet" = --quiet ] || printf '\nrun dir: %s   kubeconfig: %s\n' "$LP_RUN_DIR" "$KUBECONFIG_ADMIN"
  return $all
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) shift; cmd_status "${1:-}" ;;
  env) cat "$LP_RUN_DIR/stack.env" ;;
  json) cat "$LP_RUN_DIR/stack.json" ;;
  stop) stop_one "${2:?usage: stack.sh stop COMPONENT}" ;;
  start) start_one "${2:?usage: stack.sh start COMPONENT}" ;;
  *) echo "usage: $0 up|down|status [--quiet]|env|json|stop NAME|start NAME" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# `make dev`: the whole system on the local node, as a user would run it on a cluster:
# the stack with the node → images (built and loaded) → `helm install` the operator →
# `kubectl apply` a LogPipeline (topics through Strimzi's topic operator, managed
# PostgreSQL and Redis) → Ready → a few events sent from a pod through the ingest Service and
# counted in PostgreSQL → port-forwards to the ingest and query APIs, and where to look.
# Running it again is harmless (every step is idempotent); `make dev-down` stops it all.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$HACK_DIR/stack/config.sh"
LP_RETRY_HINT="make dev (again: every step is idempotent), or make dev-down && make dev"
export PATH="$REPO_ROOT/node_modules/.bin:$LP_BIN:$PATH"
export KUBECONFIG="$KUBECONFIG_ADMIN"

RELEASE=logpipeline-operator
OP_NS=logpipeline-system
NS=logpipeline-dev
INGEST_PORT=$((18080 + LP_PORT_OFFSET))
QUERY_PORT=$((18081 + LP_PORT_OFFSET))
DEV_LOG="$LP_RUN_DIR/logs/dev.log"
if [ "$LP_STRIMZI" = on ]; then SAMPLE=config/samples/strimzi.yaml; else SAMPLE=config/samples/minimal.yaml; fi
NAME=$(awk '/^  name:/{print $2; exit}' "$REPO_ROOT/$SAMPLE")

# port_forward WHAT LOCAL_PORT TARGET_PORT: kubectl port-forward in the background, by PID.
port_forward() {
  local pf="$LP_RUN_DIR/pids/dev-forward-$1.pid"
  stop_pid "$pf"
  setsid kubectl port-forward -n "$NS" --address 127.0.0.1 "svc/$NAME-$1" "$2:$3" \
    >>"$LP_RUN_DIR/logs/dev-forward-$1.log" 2>&1 </dev/null &
  echo $! >"$pf"
  for _ in $(seq 1 40); do
    (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0
    sleep 0.25
  done
  die "kubectl port-forward to svc/$NAME-$1 did not start" "$LP_RUN_DIR/logs/dev-forward-$1.log"
}

stop_pid() {
  local pf="$1" pid
  [ -f "$pf" ] || return 0
  pid=$(cat "$pf")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pf"
}

if [ "${1:-}" = down ]; then
  # The port-forwards by PID; then, while the operator still runs (so the pipeline's
  # finalizer is carried out), the dev namespace and the release, so the stack's etcd keeps
  # nothing of make dev for the next stack-up or make test. make dev-down stops the stack next.
  for f in "$LP_RUN_DIR"/pids/dev-forward-*.pid; do [ -e "$f" ] && stop_pid "$f"; done
  if bash "$HACK_DIR/stack/stack.sh" status --quiet 2>/dev/null; then
    step "delete namespace $NS and helm uninstall $RELEASE"
    kubectl delete namespace "$NS" --ignore-not-found --timeout=180s >>"$DEV_LOG" 2>&1 || true
    helm uninstall "$RELEASE" -n "$OP_NS" --ignore-not-found --wait --timeout 2m >>"$DEV_LOG" 2>&1 || true
    kubectl delete namespace "$OP_NS" --ignore-not-found --timeout=120s >>"$DEV_LOG" 2>&1 || true
    done_step
  fi
  exit 0
fi

mkdir -p "$LP_RUN_DIR/logs" "$LP_RUN_DIR/pids"
LP_NODE=1 bash "$HACK_DIR/stack/stack.sh" up
bash "$HACK_DIR/images/build.sh" build

step "helm upgrade --install $RELEASE (namespace $OP_NS, values hack/local-values.yaml)"
run_logged "$DEV_LOG" helm upgrade --install "$RELEASE" "$REPO_ROOT/charts/logpipeline-operator" \
  -n "$OP_NS" --create-namespace -f "$HACK_DIR/local-values.yaml" --wait --timeout 5m
done_step "$(kubectl get deploy -n "$OP_NS" "$RELEASE" -o jsonpath='{.status.readyReplicas}/{.spec.replicas} ready')"

step "kubectl apply -n $NS -f $SAMPLE"
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f - >>"$DEV_LOG" 2>&1
run_logged "$DEV_LOG" kubectl apply -n "$NS" -f "$REPO_ROOT/$SAMPLE"
done_step "LogPipeline $NAME"

step "LogPipeline $NAME Ready (topics, PostgreSQL, Redis, producer, consumer, query)"
for i in $(seq 1 120); do
  ready=$(kubectl get lp -n "$NS" "$NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)
  [ "$ready" = True ] && break
  if [ $((i % 10)) -eq 0 ]; then
    printf '    %s\n' "$(kubectl get lp -n "$NS" "$NAME" -o jsonpath='{.status.phase}: {.status.conditions[?(@.type=="Ready")].message}' 2>/dev/null)" >&2
  fi
  sleep 5
done
[ "$ready" = True ] || die "LogPipeline $NAME is not Ready after 10 minutes: kubectl describe lp -n $NS $NAME; kubectl get pods -n $NS" \
  "$(kubectl logs -n "$OP_NS" -l app.kubernetes.io/name=logpipeline-operator --tail=50 >"$LP_RUN_DIR/logs/dev-operator.log" 2>&1; echo "$LP_RUN_DIR/logs/dev-operator.log")"
done_step

step "send 5 events from a pod through the ingest Service; count them in PostgreSQL"
INGEST_URL=$(kubectl get lp -n "$NS" "$NAME" -o jsonpath='{.status.endpoints.ingest}')
QUERY_URL=$(kubectl get lp -n "$NS" "$NAME" -o jsonpath='{.status.endpoints.query}')
RUN="dev$(date +%s)"
kubectl create configmap e2e-client -n "$NS" --from-file=loadgen.mjs="$REPO_ROOT/test/e2e/loadgen.mjs" \
  --dry-run=client -o yaml | kubectl apply -f - >>"$DEV_LOG" 2>&1
kubectl delete pod -n "$NS" dev-client --ignore-not-found --wait=true >>"$DEV_LOG" 2>&1
kubectl apply -f - >>"$DEV_LOG" 2>&1 <<YAML
apiVersion: v1
kind: Pod
metadata: { name: dev-client, namespace: $NS }
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  securityContext: { runAsNonRoot: true, runAsUser: 10001, seccompProfile: { type: RuntimeDefault } }
  containers:
    - name: client
      image: logpipeline/producer:0.1.0
      imagePullPolicy: Never
      args: [/scripts/loadgen.mjs]
      env:
        - { name: MODE, value: load }
        - { name: INGEST_URL, value: "$INGEST_URL" }
        - { name: RUN, value: "$RUN" }
        - { name: COUNT, value: "5" }
        - { name: SOURCES, value: "1" }
        - name: API_KEYS
          valueFrom: { secretKeyRef: { name: $NAME-api-keys, key: api-keys } }
      securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: [ALL] } }
      volumeMounts: [{ name: scripts, mountPath: /scripts }]
  volumes: [{ name: scripts, configMap: { name: e2e-client } }]
YAML
for _ in $(seq 1 60); do
  phase=$(kubectl get pod -n "$NS" dev-client -o jsonpath='{.status.phase}' 2>/dev/null || true)
  [ "$phase" = Succeeded ] || [ "$phase" = Failed ] && break
  sleep 1
done
kubectl logs -n "$NS" dev-client >>"$DEV_LOG" 2>&1 || true
[ "$phase" = Succeeded ] || die "the client pod did not send the events (phase ${phase:-none}): kubectl logs -n $NS dev-client" "$DEV_LOG"
rows=0
for _ in $(seq 1 60); do
  rows=$(kubectl exec -n "$NS" "$NAME-postgres-0" -c postgres -- psql -h /var/run/postgresql -U logpipeline -d logpipeline \
    -tAc "SELECT count(*) FROM public.logs WHERE source = '$RUN-0'" 2>>"$DEV_LOG" || echo 0)
  [ "$rows" = 5 ] && break
  sleep 1
done
[ "$rows" = 5 ] || die "the events did not reach PostgreSQL (found ${rows:-0} of 5)" "$DEV_LOG"
kubectl delete pod -n "$NS" dev-client --wait=false >>"$DEV_LOG" 2>&1 || true
done_step "5 of 5 in PostgreSQL (source $RUN-0)"

step "port-forwards: ingest 127.0.0.1:$INGEST_PORT, query 127.0.0.1:$QUERY_PORT"
port_forward producer "$INGEST_PORT" 80
port_forward query "$QUERY_PORT" 80
done_step

key_cmd="kubectl get secret -n $NS $NAME-api-keys -o jsonpath='{.data.api-keys}' | base64 -d | cut -d: -f2"
read_key_cmd="kubectl get secret -n $NS $NAME-query-keys -o jsonpath='{.data.api-keys}' | base64 -d | cut -d: -f2"
cat <<EOF

The whole system runs on the local node (kubelet, containerd, CoreDNS, kube-proxy, metrics-server).
The project's kubectl, helm and Node 24 are in its tool cache, not on PATH; this line (also: make env) puts them first:
  export PATH="$REPO_ROOT/node_modules/.bin:$LP_BIN:\$PATH" KUBECONFIG=$KUBECONFIG_ADMIN
  kubectl get lp -A -o wide                 # READY PHASE PRODUCERS CONSUMERS LAG DIVERGENCE DLQ
  kubectl get pods -n $NS                   # producer, consumer, query, postgres, redis
  kubectl logs -n $OP_NS deploy/$RELEASE    # the operator

In the cluster: ingest $INGEST_URL   query $QUERY_URL
Port-forwarded:  ingest http://127.0.0.1:$INGEST_PORT   query http://127.0.0.1:$QUERY_PORT   (OpenAPI: /docs/json)

Log explorer:    http://127.0.0.1:$QUERY_PORT/   (it asks for a query key, kept only in that browser tab)
  $read_key_cmd    # prints a query key to paste there

  KEY=\$($key_cmd)              # an ingest key: writes only
  READ_KEY=\$($read_key_cmd)    # a query key: reads only
  curl -X POST http://127.0.0.1:$INGEST_PORT/api/logs -H "x-api-key: \$KEY" -H 'content-type: application/json' \\
       -d '{"level":"ERROR","source":"checkout","message":"payment declined"}'
  curl "http://127.0.0.1:$QUERY_PORT/api/logs?q=payment" -H "x-api-key: \$READ_KEY"
  kubectl exec -n $NS $NAME-postgres-0 -- psql -h /var/run/postgresql -U logpipeline -d logpipeline \\
       -c 'select level, source, message from public.logs order by ts desc limit 5'

Logs: $LP_RUN_DIR/logs/ (dev.log, and each stack component's); pods: kubectl logs -n $NS <pod>
Stop: make dev-down
EOF
total_time

#!/usr/bin/env bash
# The local stack's fixed addresses and ports. Every value can be overridden from the
# environment, so a second, isolated instance (tests that stop components) can run beside
# the main one: LP_RUN_DIR, LP_PORT_OFFSET, LP_BRIDGE, LP_BRIDGE_IP, LP_STRIMZI=off.

LP_RUN_DIR="${LP_RUN_DIR:-/var/tmp/logpipeline-stack}"
LP_PORT_OFFSET="${LP_PORT_OFFSET:-0}"
# A bridge the stack creates itself: pods (full-node issue) reach the API server, Kafka,
# PostgreSQL and Redis through this address; host clients use it for the API server too.
# It sits inside the pod network so the node's IP is not loopback.
LP_BRIDGE="${LP_BRIDGE:-lp0}"
LP_BRIDGE_IP="${LP_BRIDGE_IP:-10.244.0.1}"
LP_BRIDGE_PREFIX="${LP_BRIDGE_PREFIX:-16}"
LP_SERVICE_CIDR="${LP_SERVICE_CIDR:-10.96.0.0/16}"
LP_SERVICE_API_IP="${LP_SERVICE_API_IP:-10.96.0.1}"

ETCD_PORT=$((12379 + LP_PORT_OFFSET))
ETCD_PEER_PORT=$((12380 + LP_PORT_OFFSET))
APISERVER_PORT=$((16443 + LP_PORT_OFFSET))
KCM_PORT=$((10257 + LP_PORT_OFFSET))
KAFKA_PORT=$((19092 + LP_PORT_OFFSET))          # 127.0.0.1, host clients
KAFKA_BRIDGE_PORT=$((19093 + LP_PORT_OFFSET))   # bridge address, for pods
KAFKA_CONTROLLER_PORT=$((19091 + LP_PORT_OFFSET))
KAFKA_SASL_PORT=$((19094 + LP_PORT_OFFSET))      # 127.0.0.1, SASL/SCRAM-SHA-512 (user logpipeline)
STRIMZI_HEALTH_PORT=8080                         # fixed by Strimzi's topic operator
POSTGRES_PORT=$((15432 + LP_PORT_OFFSET))
REDIS_PORT=$((16379 + LP_PORT_OFFSET))

LP_STRIMZI="${LP_STRIMZI:-on}"
STRIMZI_NAMESPACE="${STRIMZI_NAMESPACE:-kafka}"
STRIMZI_CLUSTER="${STRIMZI_CLUSTER:-local}"

PKI="$LP_RUN_DIR/pki"
KUBECONFIG_ADMIN="$LP_RUN_DIR/kubeconfig"

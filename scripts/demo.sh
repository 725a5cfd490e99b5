#!/usr/bin/env bash
# The main job on a fresh machine with no internet: build the offline test images, serve them from a
# real CNCF distribution registry on 127.0.0.1:5000, and pull one into a demo home with `msb pull`,
# then list and inspect the cache. Needs `bash scripts/setup-system.sh && npm ci && npm run build`.
set -euo pipefail
cd "$(dirname "$0")/.."
FIX=${MSB_TEST_FIXTURES:-/tmp/msb-test-fixtures}
HOME_DIR=${MSB_DEMO_HOME:-/tmp/msb-demo-home}
IMAGE=${1:-127.0.0.1:5000/peers/multilayer:latest}
mkdir -p "$FIX"
if [ ! -f "$FIX/demo-images.done" ]; then
  bash test/fixtures/build-test-images.sh "$FIX/demo-images" > "$FIX/demo-build.log" 2>&1
  touch "$FIX/demo-images.done"
fi
bash test/fixtures/start-registry.sh 5000 "$FIX/registry-5000" noauth
if ! curl -sf -o /dev/null -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://127.0.0.1:5000/v2/peers/multilayer/manifests/latest"; then
  bash test/fixtures/push-test-images.sh 127.0.0.1:5000 "$FIX/demo-images" > "$FIX/demo-push.log" 2>&1
fi
node bin/msb.js --home "$HOME_DIR" pull "$IMAGE"
node bin/msb.js --home "$HOME_DIR" images
node bin/msb.js --home "$HOME_DIR" image inspect "$IMAGE"

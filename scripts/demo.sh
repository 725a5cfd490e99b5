#!/usr/bin/env bash
# The main job on a fresh machine with no internet: build the offline test images, serve them from a
# real CNCF distribution registry on 127.0.0.1:5000, and pull one into a demo home with `msb pull`,
# then list and inspect the cache. Needs `bash scripts/setup-system.sh && npm ci && npm run build`.
set -euo pipefail
cd "$(dirname "$0")/.."
HOME_DIR=${MSB_DEMO_HOME:-/tmp/msb-demo-home}
IMAGE=${1:-127.0.0.1:5000/peers/multilayer:latest}
# Same fixtures and registry as the test suite (built once per machine, reproducible).
node -e "import('./dist/test/helpers/env.js').then((m) => { const r = m.ensureRegistry('noauth'); console.error('registry ' + r.host + ' ready'); })"
node bin/msb.js --home "$HOME_DIR" pull "$IMAGE"
node bin/msb.js --home "$HOME_DIR" images
node bin/msb.js --home "$HOME_DIR" image inspect "$IMAGE"

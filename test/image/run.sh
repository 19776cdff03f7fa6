#!/usr/bin/env bash
# The image tier (npm run test:image; test/run.sh runs it): builds the image from the Dockerfile with BuildKit against
# stand-in bases (first run: BuildKit and the bases into the cache, several minutes) and checks what it holds and runs.
# Locally, without root, it skips with the reason; under CI=true it must run.
set -uo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
cd "$here"
if [ "$(id -u)" != 0 ]; then
  [ "${CI:-}" = true ] && { echo "image: FAILED: needs root under CI=true" >&2; exit 1; }
  echo "image: skipped: needs root (buildkitd runs runc; the test chroots into the image)"; exit 0
fi
bash test/setup/node-deps.sh image || { echo "image: FAILED: cannot install mmdebstrap/runc" >&2; exit 1; }
start=$SECONDS
npx tap --disable-coverage --allow-incomplete-coverage --jobs=1 --timeout=3600 --reporter="${ASM_E2E_REPORTER:-terse}" test/image/*.test.ts
rc=$?
echo "image: finished in $((SECONDS - start))s (exit $rc)"
exit $rc

#!/usr/bin/env bash
# The three TypeScript projects (service, dashboard, service worker) are independent: check them at once,
# so `npm test` spends the time of the slowest, not of all three. Every project's errors are printed, and
# the script fails if any project does.
set -uo pipefail
cd "$(dirname "$0")/.."
pids=()
for project in . web web/src/sw; do
  npx --no-install tsc -p "$project" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
exit $status

#!/usr/bin/env bash
# `npm test`: lint, then the type check beside the suite (it needs one core for about 12 s, mostly while
# vitest builds the dashboard and starts PostgreSQL), then the verdict of both. Arguments go to vitest.
set -uo pipefail
cd "$(dirname "$0")/.."
npx --no-install biome check . || exit 1
bash scripts/typecheck.sh > >(sed 's/^/typecheck: /') 2>&1 &
typecheck=$!
npx --no-install vitest run "$@"
suite=$?
wait "$typecheck"
types=$?
[ "$types" -eq 0 ] || echo "npm test: the type check failed (its errors are above, each line starting with 'typecheck:')" >&2
[ "$suite" -eq 0 ] && [ "$types" -eq 0 ]

#!/usr/bin/env bash
# Fails when Cargo.lock holds more than one sqlx: postgres-es needs sqlx 0.8, and a second
# copy (pgvector resolves 0.9 unless pinned) would split the types so a pool from one cannot
# be used with the other. Fix with: cargo update -p sqlx@0.9.0 --precise 0.8.6
set -euo pipefail
cd "$(dirname "$0")/../.."
versions=$(awk '/^name = "sqlx"$/ { getline; print $3 }' Cargo.lock | tr -d '"' | sort -u)
count=$(printf '%s\n' "$versions" | grep -c . || true)
if [[ $count -ne 1 ]]; then
  printf 'check-deps.sh: expected exactly one sqlx in Cargo.lock, found %s: %s\n' \
    "$count" "$(echo $versions)" >&2
  exit 1
fi
case $versions in
  0.8.*) ;;
  *) printf 'check-deps.sh: sqlx %s is not 0.8.x (postgres-es needs 0.8)\n' "$versions" >&2; exit 1 ;;
esac
echo "check-deps.sh: one sqlx ($versions)" >&2

#!/usr/bin/env bash
# Vendor the UI's third-party JavaScript (Chart.js 4) into static/vendor/ from npm.
# The files are committed, so the app needs no network at run time; rerun to upgrade them.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=static/vendor
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
( cd "$tmp" && npm pack --silent chart.js@4 >/dev/null )
mkdir -p "$dest"
for tarball in "$tmp"/*.tgz; do
  name=$(basename "$tarball")
  mkdir -p "$tmp/x" && rm -rf "$tmp/x"/* && tar -xzf "$tarball" -C "$tmp/x"
  case "$name" in
    chart.js-*)
      cp "$tmp/x/package/dist/chart.umd.js" "$dest/chart.umd.js"
      cp "$tmp/x/package/LICENSE.md" "$dest/chart.js.LICENSE.md"
      echo "chart.js ${name#chart.js-}" ;;
  esac
done | sed 's/\.tgz$//' > "$dest/VERSIONS"
cat "$dest/VERSIONS"

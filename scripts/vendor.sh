#!/usr/bin/env bash
# Vendor third-party JavaScript from npm: the UI's (Chart.js 4, the Quill 2 rich-text editor)
# into static/vendor/, the browser tests' accessibility checker (axe-core 4.14) into tests/vendor/.
# The files are committed, so the app needs no network at run time; rerun to upgrade them.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=static/vendor
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
( cd "$tmp" && npm pack --silent chart.js@4 quill@2 axe-core@4.14 >/dev/null )
mkdir -p "$dest" tests/vendor
for tarball in "$tmp"/*.tgz; do
  name=$(basename "$tarball")
  mkdir -p "$tmp/x" && rm -rf "$tmp/x"/* && tar -xzf "$tarball" -C "$tmp/x"
  case "$name" in
    chart.js-*)
      cp "$tmp/x/package/dist/chart.umd.js" "$dest/chart.umd.js"
      cp "$tmp/x/package/LICENSE.md" "$dest/chart.js.LICENSE.md"
      echo "chart.js ${name#chart.js-}" ;;
    quill-*)
      cp "$tmp/x/package/dist/quill.js" "$dest/quill.js"
      cp "$tmp/x/package/dist/quill.snow.css" "$dest/quill.snow.css"
      cp "$tmp/x/package/LICENSE" "$dest/quill.LICENSE"
      cp "$tmp/x/package/dist/quill.js.LICENSE.txt" "$dest/quill.js.LICENSE.txt"  # bundled parts
      echo "quill ${name#quill-}" ;;
    axe-core-*)
      cp "$tmp/x/package/axe.min.js" tests/vendor/axe.min.js
      cp "$tmp/x/package/LICENSE" tests/vendor/axe-core.LICENSE
      echo "axe-core ${name#axe-core-}" | sed 's/\.tgz$//' > tests/vendor/VERSIONS ;;
  esac
done | sed 's/\.tgz$//' > "$dest/VERSIONS"
cat "$dest/VERSIONS"

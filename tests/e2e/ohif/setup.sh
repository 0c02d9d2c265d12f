#!/usr/bin/env bash
# Install what the OHIF end-to-end check needs: Debian's Chromium, playwright-core, and the
# prebuilt OHIF v3 viewer (@ohif/app's dist/).
#
# @ohif/app is a build of the whole viewer; installing it as an ordinary dependency would pull
# in its source-level dependency tree (webpack loaders, every @ohif/* package), none of which
# the prebuilt dist/ needs. So only playwright-core is an npm dependency; the @ohif/app
# tarball is fetched with `npm pack`, checked against the integrity pinned in package.json
# ("config"), and unpacked into node_modules/@ohif/app.
#
# Idempotent: re-running does nothing that is already done.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

if ! command -v node >/dev/null 2>&1 || ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) < 20 ? 1 : 0)'; then
    echo "Node.js >= 20 is needed (playwright-core); install it and re-run $0" >&2
    exit 1
fi

# --- Chromium (Debian package; Playwright's own browser downloads are not used) ----------
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update
        apt-get install -y chromium
    else
        echo "chromium is missing: run 'sudo apt-get install -y chromium' and re-run $0" >&2
        exit 1
    fi
fi

# --- playwright-core ------------------------------------------------------------------------
# `npm ci` empties node_modules (the viewer too), so only run it when the lock changed.
want="$(node -p "require('./package-lock.json').packages['node_modules/playwright-core'].version")"
have="$(node -p "require('./node_modules/playwright-core/package.json').version" 2>/dev/null || true)"
if [ "$want" != "$have" ]; then
    npm ci --ignore-scripts --no-audit --no-fund
fi

# --- @ohif/app dist/ -----------------------------------------------------------------------
version="$(node -p "require('./package.json').config.ohifApp")"
integrity="$(node -p "require('./package.json').config.ohifAppIntegrity")"
dest="node_modules/@ohif/app"
stamp="$dest/.omipacs-installed"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$version $integrity" ] && [ -f "$dest/dist/index.html" ]; then
    echo "@ohif/app $version already installed"
else
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    (cd "$tmp" && npm pack "@ohif/app@$version" --silent >/dev/null)
    tarball="$(ls "$tmp"/*.tgz)"
    actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | openssl base64 -A)"
    if [ "$actual" != "$integrity" ]; then
        echo "@ohif/app $version: integrity mismatch ($actual != $integrity)" >&2
        exit 1
    fi
    rm -rf "$dest"
    mkdir -p "$dest"
    tar -xzf "$tarball" -C "$dest" --strip-components=1
    echo "$version $integrity" >"$stamp"
    echo "@ohif/app $version installed in $here/$dest"
fi

chromium --version 2>/dev/null
node -e "console.log('playwright-core', require('playwright-core/package.json').version)"

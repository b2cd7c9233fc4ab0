#!/usr/bin/env bash
# Best effort: install headless Chromium (Debian package) for the browser rendering test.
# The test skips itself, printing the reason, when no browser can be found.
command -v chromium >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
        || echo "install-browser: could not install chromium; browser tests will be skipped"
else
    echo "install-browser: not root or no apt-get; browser tests will be skipped"
fi
exit 0

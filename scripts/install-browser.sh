#!/usr/bin/env bash
# Best effort: install headless Chromium (Debian/Ubuntu package) for tests/test_viz_browser.py.
# The browser tests skip themselves, printing the reason, when no browser can be found.
for b in chromium chromium-browser google-chrome google-chrome-stable chrome; do
    command -v "$b" >/dev/null 2>&1 && exit 0
done
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
        || echo "install-browser: could not install chromium; browser tests will be skipped"
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null && command -v apt-get >/dev/null 2>&1; then
    (sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
        || echo "install-browser: could not install chromium; browser tests will be skipped"
else
    echo "install-browser: not root (and no passwordless sudo) or no apt-get; browser tests will be skipped"
fi
exit 0

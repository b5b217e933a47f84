#!/usr/bin/env bash
# Debian packages the test suite drives for real: Chromium's headless shell (the dashboard tests;
# Playwright's own browser download cannot work on these machines) and nginx (the load-balancer test).
# Runs before `npm test`. As root it installs what is missing; otherwise it says in one line what to
# install. The full browser (/usr/bin/chromium) does the dashboard tests too, only slower: when it is
# there, a headless shell that cannot be installed is a warning, not a stop.
set -euo pipefail
missing=()
if [ -n "${CHROMIUM_PATH:-}" ]; then
  [ -x "$CHROMIUM_PATH" ] || { echo "CHROMIUM_PATH=$CHROMIUM_PATH is not an executable" >&2; exit 1; }
else
  [ -x /usr/bin/chromium-headless-shell ] || missing+=(chromium-headless-shell)
fi
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} (Debian packages) for the test suite…"
  apt-get update -qq || true
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    # One at a time, so that nginx is not lost with a headless shell that will not install.
    for package in "${missing[@]}"; do
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$package" >/dev/null || true
    done
  fi
  # nginx's package starts a system instance on port 80; the tests run their own.
  if [[ " ${missing[*]} " == *" nginx "* ]]; then service nginx stop >/dev/null 2>&1 || true; fi
fi
still=()
for package in "${missing[@]}"; do
  case "$package" in
    nginx) command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || still+=(nginx) ;;
    chromium-headless-shell)
      if [ -x /usr/bin/chromium-headless-shell ]; then :
      elif [ -x /usr/bin/chromium ]; then echo "no chromium-headless-shell: the dashboard tests use /usr/bin/chromium (slower)" >&2
      else still+=(chromium-headless-shell); fi ;;
  esac
done
[ ${#still[@]} -eq 0 ] && exit 0
echo "npm test needs ${still[*]}: run 'sudo apt-get install -y ${still[*]}' (or set CHROMIUM_PATH), then npm test again" >&2
exit 1

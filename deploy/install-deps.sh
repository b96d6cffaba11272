#!/bin/sh
# Install the Debian 12 packages rollbackd needs to build, test and benchmark.
# Idempotent and fast when everything is present: only missing packages are
# installed, and the package lists are refreshed only when something is missing.
#   deploy/install-deps.sh          build + test dependencies
#   deploy/install-deps.sh --bench  also wrk, webhook and hyperfine for bench/
set -eu

PKGS="build-essential cmake pkg-config libevent-dev libjansson-dev libcurl4-openssl-dev
libsodium-dev libcriterion-dev python3 python3-yaml clang clang-format prometheus-alertmanager prometheus curl
chromium chromium-driver python3-selenium python3-aiosmtpd openssl haproxy socat"
if [ "${1:-}" = "--bench" ]; then
	PKGS="$PKGS wrk webhook hyperfine valgrind"
fi

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

echo "install-deps: installing:$missing" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null 2>&1 || { echo "install-deps: need root or sudo to install:$missing" >&2; exit 1; }
	SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
# Do not let package scripts start the Debian services (prometheus, alertmanager):
# the tests start their own on loopback ports.
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
	$SUDO chmod +x /usr/sbin/policy-rc.d
	trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null

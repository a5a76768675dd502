#!/usr/bin/env bash
# The whole test suite, from a fresh machine with only Python and Debian's packages.
# Installs what the tests need (uv, the workspace; as root, Debian's PostgreSQL server,
# Chromium for the dashboard tests and promtool), then runs pytest.
# Usage: bash tests/run.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v uv >/dev/null 2>&1; then
    python3 -m pip install --quiet uv
fi

apt_install() {
    # Debian packages the suite uses; only possible as root, skipped otherwise.
    [ "$(id -u)" -eq 0 ] || { echo "not root: cannot apt-get install $*" >&2; return 0; }
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$@" >/dev/null
}

missing=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ -d /usr/share/fonts/opentype/noto ] || missing+=(fonts-noto-cjk)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
if [ "${#missing[@]}" -gt 0 ]; then
    apt_install "${missing[@]}"
fi

uv sync --locked --quiet --compile-bytecode
# Lint and types first: cheap, and the style rules are part of what CI holds.
uv run --locked ruff check --quiet .
uv run --locked ruff format --check --quiet .
uv run --locked mypy
# Three workers on two cores: most tests wait on their own servers, so the suite takes
# half the time; loadscope keeps a module on one worker, so its module-wide stack starts
# once. ZHIBAO_TEST_WORKERS=0 runs it in one process; later arguments override these.
set +e
uv run --locked pytest -n "${ZHIBAO_TEST_WORKERS:-3}" --dist loadscope "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: that is a failure" >&2
    exit 1
fi
exit "$status"

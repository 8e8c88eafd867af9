#!/bin/sh
# setup.sh: installs what the Python test tools (tests/py/test_*.py) need,
# quietly, and only what is missing: the openai SDK, schemathesis and
# playwright, torch + transformers (+ safetensors) when they are not
# installed already, and Debian's chromium for playwright (test_dashboard.py;
# never `playwright install`, whose browser downloads are not reachable).
# A stamp under ${XDG_CACHE_HOME:-~/.cache}/owlore records a complete setup
# for this interpreter, so a rerun costs one `python3 -c` check.
set -e
PY=${PYTHON:-python3}
if ! command -v chromium >/dev/null 2>&1; then
    echo "tests/py/setup.sh: installing: chromium"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
cache=${XDG_CACHE_HOME:-$HOME/.cache}/owlore
stamp="$cache/py-deps-$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
mods='openai schemathesis torch transformers safetensors yaml playwright'
# finds the modules without importing them (importing torch takes seconds)
check="import importlib.util as u, sys; sys.exit(any(u.find_spec(m) is None for m in '$mods'.split()))"
if [ -f "$stamp" ] && "$PY" -c "$check" 2>/dev/null; then
    exit 0
fi
missing=""
for spec in openai:openai schemathesis:schemathesis torch:torch transformers:transformers \
            safetensors:safetensors yaml:pyyaml playwright:playwright; do
    mod=${spec%%:*}
    pkg=${spec#*:}
    "$PY" -c "import $mod" 2>/dev/null || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
    echo "tests/py/setup.sh: installing:$missing"
    "$PY" -m pip install -q --disable-pip-version-check $missing >/dev/null
fi
"$PY" -c "import $(echo $mods | tr " " ",")" || {
    echo "tests/py/setup.sh: the Python test dependencies do not import" >&2
    exit 1
}
mkdir -p "$cache"
touch "$stamp"

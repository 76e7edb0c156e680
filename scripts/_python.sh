# shellcheck shell=bash
# Helpers for scripts/test: find a Python interpreter and keep a virtualenv in step with setup.cfg.
# Source this file; it defines functions only.

# find_python X.Y — print the path of a working pythonX.Y, or explain how to get one and return 1.
find_python() {
    local want="$1" cand root
    local -a candidates=()
    if cand=$(command -v "python$want" 2>/dev/null); then
        candidates+=("$cand")
    fi
    if command -v pyenv >/dev/null 2>&1 && root=$(pyenv root 2>/dev/null); then
        # newest patch release first
        while IFS= read -r cand; do
            candidates+=("$cand")
        done < <(ls -d "$root"/versions/"$want"*/bin/"python$want" 2>/dev/null | sort -rV)
    fi
    candidates+=("/usr/local/bin/python$want" "/usr/bin/python$want")
    for cand in "${candidates[@]}"; do
        # A pyenv shim exists on PATH even when that version is not selected, and then fails: so try each one.
        if [[ -x "$cand" ]] && "$cand" -c "import sys, venv; sys.exit(sys.version_info[:2] != tuple(map(int, '$want'.split('.'))))" \
            >/dev/null 2>&1; then
            # print the interpreter itself, not a shim in front of it
            "$cand" -c 'import sys; print(sys.executable)'
            return 0
        fi
    done
    {
        echo "error: no working python$want found (looked on PATH, in pyenv's versions and in /usr/bin)."
        echo "       Install it with one of:"
        echo "         pyenv install $want        # then re-run scripts/test; pyenv need not select it"
        echo "         apt-get install python$want python$want-venv"
    } >&2
    return 1
}

# ensure_venv DIR PYTHON DJANGO_REQUIREMENT — create DIR with PYTHON if needed and install the project
# (editable, extras test+redis) with the given Django requirement. Re-installs when setup.cfg, the
# requirement or the interpreter changed; a stamp file inside the venv records what was installed.
ensure_venv() {
    local dir="$1" python="$2" django_req="$3" stamp want have py_version
    stamp="$dir/.django-tasks-q-install-stamp"
    py_version=$("$python" -c 'import sys; print(sys.version)')
    want=$({ cat setup.cfg; echo "$django_req"; echo "$py_version"; } | sha256sum | cut -d' ' -f1)
    # (re)create when missing, broken, or made by another interpreter
    if [[ ! -x "$dir/bin/python" ]] ||
        [[ "$("$dir/bin/python" -c 'import sys; print(sys.version)' 2>/dev/null)" != "$py_version" ]]; then
        echo "==> creating $dir with $python"
        rm -rf "$dir"
        "$python" -m venv "$dir" || return 1
    fi
    have=$(cat "$stamp" 2>/dev/null || true)
    if [[ "$have" == "$want" ]]; then
        return 0
    fi
    local log="$dir/install.log"
    echo "==> installing django-tasks-q[test,redis] and '$django_req' into $dir (log: $log)"
    rm -f "$stamp"
    if ! { "$dir/bin/python" -m pip install --disable-pip-version-check --upgrade pip &&
        "$dir/bin/python" -m pip install --disable-pip-version-check -e '.[test,redis]' "$django_req"; } >"$log" 2>&1; then
        echo "error: pip install into $dir failed; the end of $log:" >&2
        tail -n 30 "$log" >&2
        return 1
    fi
    echo "$want" >"$stamp"
}

# port_open HOST PORT — true when something accepts TCP connections there.
port_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" >/dev/null 2>&1
}

# wait_for_port NAME HOST PORT SECONDS — wait until the port answers; false after the deadline.
wait_for_port() {
    local name="$1" host="$2" port="$3" deadline=$((SECONDS + $4))
    while ((SECONDS < deadline)); do
        if port_open "$host" "$port"; then
            return 0
        fi
        sleep 0.5
    done
    echo "warning: $name did not answer on $host:$port within $4 s" >&2
    return 1
}

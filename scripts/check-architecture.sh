#!/usr/bin/env bash
# Checks the "Architecture invariants" of ARCHITECTURE.md that a text search can decide. Fast: no build.
# Each failure names the file (and line) and the rule it breaks; the exit status is 1 when any rule is broken.
#
# "Non-test source" is every `.rs` file under crates/*/src except `tests.rs` files, files under a `tests/`
# directory and the test-helper crate `testkit`, read only up to its first inline `#[cfg(test)] mod … {` block,
# with `//` comment lines skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

# Rules report from pipelines (subshells), so a broken rule is recorded in a file rather than a variable.
broken=$(mktemp)
trap 'rm -f "$broken"' EXIT
fail() {
    echo "architecture: $1" >&2
    echo x >>"$broken"
}

# The non-test source files, one a line.
sources() {
    find crates/*/src -name '*.rs' -not -name tests.rs -not -path '*/tests/*' -not -path 'crates/testkit/*' | sort
}

# Prints `file:line:text` for each non-test, non-comment line of the files given that matches the ERE $1.
scan() {
    local re=$1
    shift
    awk -v re="$re" '
        FNR == 1 { intest = 0; pending = 0 }
        intest { next }
        pending && /^mod [A-Za-z_0-9]+ *\{/ { intest = 1; next }
        { pending = ($0 ~ /^#\[cfg\(test\)\]/) }
        /^[[:space:]]*\/\// { next }
        $0 ~ re { print FILENAME ":" FNR ":" $0 }
    ' "$@"
}

# Like `scan` over the non-test sources, leaving out the files whose paths match the ERE $2 (the rule's owners).
scan_outside() {
    local re=$1 owners=$2
    local files
    files=$(sources | grep -Ev "$owners" || true)
    [ -z "$files" ] && return 0
    # shellcheck disable=SC2086
    scan "$re" $files
}

report() {
    local rule=$1
    while IFS= read -r hit; do
        [ -n "$hit" ] && fail "${hit%%:*}: $rule
    ${hit#*:}"
    done
}

# 1. ha is sans-IO: the crate depends on nothing (its [dependencies] and [build-dependencies] are empty).
awk '
    /^\[/ { deps = ($0 ~ /^\[(target\..*\.)?(build-)?dependencies(\.|\])/) ; if ($0 ~ /^\[(target\..*\.)?(build-)?dependencies\./) print FNR ": " $0; next }
    deps && !/^[[:space:]]*(#|$)/ { print FNR ": " $0 }
' crates/ha/Cargo.toml | while IFS= read -r line; do
    echo "crates/ha/Cargo.toml:$line"
done | report "patroni-ha must have no dependencies (the HA core is sans-IO: no sockets, clocks, processes or JSON)"

# 2. Only dcs knows key names: no DCS key paths outside crates/dcs/src. The REST API has routes named like some keys
#    (/config, /failover, /history, /failsafe, /sync), so those are not searched for; the keys only DCS paths have are.
#    config's default of the `namespace` setting is the one `/service/` outside dcs.
scan_outside '"/service/|"[^"]*(members/|optime/)[^"]*"|"[^"]*/initialize"|\{[A-Za-z_0-9.]*\}/leader"' \
    '^crates/dcs/src/' |
    grep -v '^crates/config/src/model/mod.rs:[0-9]*:pub const DEFAULT_NAMESPACE: &str = "/service/";' |
    report "only crates/dcs/src names DCS keys (/service/…, members/, optime/, initialize, <prefix>/leader)" || true

# 3. Only postgres speaks SQL: no tokio-postgres connection or query call outside crates/postgres/src.
scan_outside 'tokio_postgres::connect|\.(simple_query|batch_execute|prepare|query|query_one|query_opt|query_raw|copy_in|copy_out)\([^)]|[^f]\.execute\(' \
    '^crates/postgres/src/' |
    report "only crates/postgres/src speaks SQL (call a function of patroni_postgres instead)" || true

# 3b. Only postgres runs PostgreSQL binaries: outside crates/postgres/src processes are started only by `ctl`'s
#     editor and pager (crates/ctl/src/commands/config.rs) and the agent's guardian (the agent's own binary,
#     crates/agent/src/guardian.rs), never with a PostgreSQL binary's name.
scan_outside 'Command::new\(' '^crates/postgres/src/|^crates/ctl/src/commands/config\.rs$|^crates/agent/src/guardian\.rs$' |
    report "only crates/postgres/src runs PostgreSQL binaries or other programs (ctl's editor and pager excepted)" || true
scan_outside 'Command::new\(.*(pg_ctl|postgres|initdb|pg_basebackup|pg_rewind|pg_controldata|pg_isready|psql)' \
    '^crates/postgres/src/' |
    report "only crates/postgres/src runs PostgreSQL binaries" || true

# 3c. Only postgres/version.rs knows what differs by PostgreSQL major: no version-number literal (90600, 130000…)
#     and no comparison of a version or major elsewhere; the rest asks its `Features`.
scan_outside '(^|[^0-9.x])(9|1[0-9])0[0-9][0-9][0-9]([^0-9]|$)|major\(\) *[<>]=?|version[a-z_]*(\.0)? *[<>]=? *[0-9]' \
    '^crates/postgres/src/version\.rs$' |
    report "only crates/postgres/src/version.rs compares PostgreSQL versions (ask PgVersion::features())" || true

# 4. Only agent spawns tasks, with the bounded exceptions ARCHITECTURE.md lists (keep the two lists in step).
spawners='^crates/agent/src/'
spawners+='|^crates/api/src/server\.rs$'          # one task per REST connection
spawners+='|^crates/dcs/src/etcd3/mod\.rs$'       # the cluster-cache watch task
spawners+='|^crates/dcs/src/zookeeper/tls\.rs$'  # use_ssl: a TLS relay per ZooKeeper server, aborted on drop
spawners+='|^crates/dcs/src/raft/node\.rs$'       # raft: peer RPC server, bootstrap, leader duties, shutdown on drop
spawners+='|^crates/postgres/src/postmaster\.rs$' # the postmaster exit watcher
spawners+='|^crates/postgres/src/command\.rs$'    # stdout/stderr readers of a running PostgreSQL tool
spawners+='|^crates/postgres/src/callbacks\.rs$'  # callback scripts, run without blocking the loop
spawners+='|^crates/postgres/src/(query|tls)\.rs$' # tokio-postgres connection drivers
scan_outside 'tokio::spawn\(|task::spawn(_blocking|_local)?\(|thread::spawn\(|thread::Builder|\b(rt|runtime|handle)\.spawn(_blocking)?\(' \
    "$spawners" |
    report "only agent spawns tasks, and the exceptions ARCHITECTURE.md lists (scripts/check-architecture.sh 'spawners')" || true

# 5. No non-test source file over 800 lines (move inline tests to a sibling tests.rs, or split the module).
sources | while IFS= read -r f; do
    n=$(wc -l <"$f")
    if [ "$n" -gt 800 ]; then
        echo "$f:$n:$n lines"
    fi
done | report "no non-test source file over 800 lines" || true

if [ -s "$broken" ]; then
    echo "architecture: invariants broken (see ARCHITECTURE.md, \"Architecture invariants\")" >&2
    exit 1
fi
echo "architecture: invariants hold"

#!/usr/bin/env bash
# Run Tansu (https://crates.io/crates/tansu), an Apache-2.0 Kafka-compatible
# broker written in Rust, as a comparison peer for Veltrix benchmarks.
# See bench/tansu.md for how this configuration was chosen and verified.
#
# Usage:
#   bench/tansu.sh install                 build/install tansu (idempotent), print binary path
#   bench/tansu.sh available               exit 0 iff a usable tansu binary is installed
#   bench/tansu.sh start DATA_DIR PORT     start one broker on 127.0.0.1:PORT, print ONLY its PID
#   bench/tansu.sh stop PID                SIGTERM, bounded wait, then SIGKILL
#   bench/tansu.sh durability              one line: what durability this configuration gives
#   bench/tansu.sh create-topic PORT NAME [PARTITIONS]
#                                          create a topic (Tansu does not auto-create topics)
#
# Environment:
#   TANSU_ROOT          install root (default target/tools/tansu in the repository); binary is $TANSU_ROOT/bin/tansu
#   CARGO_TARGET_DIR    build dir for `install` (default target/tansu-build in the repository)
#   TANSU_START_TIMEOUT seconds to wait for the port (default 30)
#   TANSU_STOP_TIMEOUT  seconds to wait after SIGTERM before SIGKILL (default 15)
#   TANSU_RUST_LOG      tansu's RUST_LOG (default warn)
#
# Client note: Debian bookworm's kcat links librdkafka 2.0.2, which cannot parse
# Tansu's ApiVersions v3 response (non-empty tagged fields; "Read underflow").
# librdkafka >= 2.1 works; see bench/tansu.md for running kcat against it.
set -euo pipefail

TANSU_VERSION=0.6.0
# The default feature set has no storage engine at all (only null://); the
# `libsql` feature provides the sqlite:// engine, the only durable local one.
TANSU_FEATURES=libsql
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TANSU_ROOT=${TANSU_ROOT:-$REPO/target/tools/tansu}
TANSU_BIN=$TANSU_ROOT/bin/tansu

DURABILITY_LINE="sqlite:// (libSQL 0.9.29, embedded SQLite) journal_mode=WAL, synchronous=NORMAL: each produce batch is one committed IMMEDIATE transaction before the ack, but commits are not fsynced (WAL fsync only at checkpoint) - survives a broker crash/kill, NOT power loss/OS crash (tansu-storage 0.6.0 src/lite.rs PoolConnection::journal_mode/synchronous + Delegate::produce; SQLite docs pragma.html#pragma_synchronous; strace: 45 fsync for 5,000 one-record acks=all produces = checkpoints only)"

# New session without forking (setsid(1) forks when it is a process-group
# leader, which would make $! the wrong PID), then exec the argv.
# shellcheck disable=SC2016 # perl code, not shell
SETSID_EXEC_PL='POSIX::setsid(); exec {$ARGV[0]} @ARGV or die "exec: $!\n"'

die() {
    echo "tansu.sh: $*" >&2
    exit 1
}

usage() {
    sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

installed_ok() {
    # Binary present, right version, and built with the sqlite storage feature.
    [[ -x $TANSU_BIN ]] || return 1
    local v
    v=$("$TANSU_BIN" --version 2>/dev/null) || return 1
    [[ $v == "tansu $TANSU_VERSION" ]] || return 1
    local meta=$TANSU_ROOT/.crates2.json
    [[ -f $meta ]] && grep -q "\"tansu $TANSU_VERSION " "$meta" && grep -q "\"$TANSU_FEATURES\"" "$meta"
}

cmd_install() {
    if ! installed_ok; then
        command -v cargo >/dev/null || die "cargo not found"
        mkdir -p "$TANSU_ROOT"
        echo "tansu.sh: building tansu $TANSU_VERSION (features: $TANSU_FEATURES); ~12 min on 2 cores" >&2
        CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target/tansu-build} \
            cargo install tansu --version "=$TANSU_VERSION" --locked \
            --features "$TANSU_FEATURES" --root "$TANSU_ROOT" >&2
        installed_ok || die "install finished but $TANSU_BIN is not usable"
    fi
    echo "$TANSU_BIN"
}

cmd_available() {
    if installed_ok; then
        return 0
    fi
    echo "tansu.sh: tansu $TANSU_VERSION (features $TANSU_FEATURES) not installed at $TANSU_BIN; run: bench/tansu.sh install" >&2
    return 1
}

is_port() {
    [[ $1 =~ ^[0-9]+$ ]] && ((10#$1 >= 1 && 10#$1 <= 65535))
}

port_open() {
    # Succeeds iff something accepts TCP connections on 127.0.0.1:$1.
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Alive and not a zombie.
pid_alive() {
    local state
    [[ -r /proc/$1/stat ]] || return 1
    state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [[ -n $state && $state != Z && $state != X ]]
}

is_tansu_pid() {
    local exe
    exe=$(readlink "/proc/$1/exe" 2>/dev/null) || return 1
    [[ ${exe##*/} == tansu || ${exe##*/} == "tansu (deleted)" ]]
}

log_tail() {
    echo "---- last lines of $1 ----" >&2
    tail -n 40 "$1" >&2 2>/dev/null || true
}

cmd_start() {
    [[ $# -eq 2 ]] || usage
    local data_dir=$1 port=$2
    is_port "$port" || die "bad port: $port"
    cmd_available || exit 1
    port_open "$port" && die "127.0.0.1:$port is already accepting connections"

    mkdir -p "$data_dir"
    data_dir=$(cd "$data_dir" && pwd -P)
    local old
    old=$(cat "$data_dir/tansu.pid" 2>/dev/null || true)
    if [[ $old =~ ^[0-9]+$ ]] && pid_alive "$old" && is_tansu_pid "$old"; then
        die "a tansu broker (pid $old) is already running on $data_dir"
    fi
    local log=$data_dir/tansu.log
    : >"$log"

    # Tansu resolves sqlite://NAME relative to its working directory, so it
    # runs inside DATA_DIR and keeps tansu.db (+ -wal/-shm) there. The
    # listener must be an IP literal: a host name such as "localhost" makes
    # tansu 0.6.0 fall back to binding [::] (all interfaces).
    # `env -i` keeps the caller's CLUSTER_ID/LISTENER_URL/RUST_LOG/... out;
    # POSIX::setsid (no fork, unlike setsid(1) in a process-group leader)
    # detaches it from the caller's terminal signals. Everything execs, so
    # $! is the broker's own PID.
    (
        cd "$data_dir"
        exec env -i PATH=/usr/bin:/bin HOME="$data_dir" NO_COLOR=1 \
            RUST_LOG="${TANSU_RUST_LOG:-warn}" \
            perl -MPOSIX -e "$SETSID_EXEC_PL" \
            "$TANSU_BIN" broker \
            --cluster-id tansu_bench \
            --listener-url "tcp://127.0.0.1:$port" \
            --advertised-listener-url "tcp://127.0.0.1:$port" \
            --storage-engine "sqlite://tansu.db" \
            --silent
    ) </dev/null >>"$log" 2>&1 &
    local pid=$!
    echo "$pid" >"$data_dir/tansu.pid"

    local timeout=${TANSU_START_TIMEOUT:-30}
    local deadline=$((SECONDS + timeout))
    while :; do
        if ! pid_alive "$pid"; then
            echo "tansu.sh: tansu (pid $pid) exited during startup" >&2
            log_tail "$log"
            exit 1
        fi
        if port_open "$port"; then
            break
        fi
        if ((SECONDS >= deadline)); then
            echo "tansu.sh: 127.0.0.1:$port not accepting after ${timeout}s; stopping pid $pid" >&2
            (cmd_stop "$pid") >&2 || true
            log_tail "$log"
            exit 1
        fi
        sleep 0.1
    done
    # Make sure the listener really is this process (not something that grabbed the port).
    is_tansu_pid "$pid" || { log_tail "$log"; die "pid $pid is not tansu"; }
    echo "$pid"
}

cmd_stop() {
    [[ $# -eq 1 && $1 =~ ^[0-9]+$ ]] || usage
    local pid=$1
    if ! pid_alive "$pid"; then
        echo "tansu.sh: pid $pid not running" >&2
        return 0
    fi
    is_tansu_pid "$pid" || die "pid $pid is not a tansu process; not killing it"
    kill -TERM "$pid" 2>/dev/null || true
    # tansu gives in-flight connections up to 5 s after SIGTERM.
    local deadline=$((SECONDS + ${TANSU_STOP_TIMEOUT:-15}))
    while pid_alive "$pid" && ((SECONDS < deadline)); do
        sleep 0.1
    done
    if pid_alive "$pid"; then
        echo "tansu.sh: pid $pid ignored SIGTERM; sending SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
        deadline=$((SECONDS + 5))
        while pid_alive "$pid" && ((SECONDS < deadline)); do
            sleep 0.1
        done
        pid_alive "$pid" && die "pid $pid survived SIGKILL"
    fi
    return 0
}

cmd_durability() {
    echo "$DURABILITY_LINE"
}

cmd_create_topic() {
    [[ $# -eq 2 || $# -eq 3 ]] || usage
    local port=$1 name=$2 partitions=${3:-1}
    is_port "$port" || die "bad port: $port"
    cmd_available || exit 1
    env -u CLUSTER_ID -u ADVERTISED_LISTENER_URL NO_COLOR=1 \
        "$TANSU_BIN" topic create --broker "tcp://127.0.0.1:$port" \
        --partitions "$partitions" "$name" >&2
}

[[ $# -ge 1 ]] || usage
sub=$1
shift
case $sub in
install) cmd_install "$@" ;;
available) cmd_available "$@" ;;
start) cmd_start "$@" ;;
stop) cmd_stop "$@" ;;
durability) cmd_durability "$@" ;;
create-topic) cmd_create_topic "$@" ;;
-h | --help | help) usage ;;
*) usage ;;
esac

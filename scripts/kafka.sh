#!/usr/bin/env bash
# Single-node Apache Kafka 4.x (KRaft, combined broker+controller) for
# sluice's integration tests. No Docker, no tarball: the broker and the CLI
# tools are fetched from Maven Central with scripts/kafka/pom.xml and run
# straight off the jar directory.
#
# Usage: scripts/kafka.sh <command> [args...]
#   fetch            download the jars into $CACHE/lib (skipped when the cached
#                    jars match the pom's hash)
#   start            fetch if needed, format storage once, start the broker in
#                    the background and wait until it answers metadata requests.
#                    Idempotent. Progress goes to stderr; stdout gets exactly one
#                    line, the bootstrap address (e.g. 127.0.0.1:19092).
#   stop             SIGTERM, wait, then SIGKILL. Idempotent.
#   status           exit 0: running and answering, 1: running but not
#                    answering, 3: not running
#   reset            stop and wipe the data dir (next start is a fresh cluster)
#   kill9            SIGKILL the broker (fault tests); data is kept
#   bootstrap        print the bootstrap address
#   tool <Class|alias> [args...]
#                    run a Kafka CLI class with the right classpath. Aliases:
#                    topics, console-producer, console-consumer, consumer-groups,
#                    metadata-quorum, get-offsets, api-versions, storage
#   logs [N]         print the last N (default 40) lines of the broker's log
#
# Environment:
#   SLUICE_KAFKA_HOME             cache/state dir (default /var/cache/sluice/kafka)
#   SLUICE_KAFKA_LIB              jar dir (default $SLUICE_KAFKA_HOME/lib); point a
#                                 second broker (own HOME and ports) at the first
#                                 one's jars to start it without fetching
#   SLUICE_KAFKA_PORT             client listener port      (default 19092)
#   SLUICE_KAFKA_CONTROLLER_PORT  KRaft controller port     (default 19093)
#   SLUICE_KAFKA_HEAP             broker max heap           (default 512m)
#   SLUICE_KAFKA_START_TIMEOUT    seconds to wait for start (default 90)
#   SLUICE_KAFKA_EXTRA_PROPS      extra server.properties lines (key=value,
#                                 newline separated), appended last
#   SLUICE_KAFKA_M2               maven local repo (default: maven's, ~/.m2/repository)
#   JAVA_HOME                     used if set, else `java` from PATH
#
# Layout under $CACHE: lib/ (jars + .stamp + .classes), config/, data/, logs/,
# kafka.pid, .lock.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POM="$SCRIPT_DIR/kafka/pom.xml"

PORT="${SLUICE_KAFKA_PORT:-19092}"
CPORT="${SLUICE_KAFKA_CONTROLLER_PORT:-19093}"
HOST=127.0.0.1
BOOTSTRAP="$HOST:$PORT"
HEAP="${SLUICE_KAFKA_HEAP:-512m}"
START_TIMEOUT="${SLUICE_KAFKA_START_TIMEOUT:-90}"
STOP_TIMEOUT=30

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() { printf 'kafka.sh: error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- cache dir --
choose_cache() {
    if [[ -n "${SLUICE_KAFKA_HOME:-}" ]]; then
        CACHE="$SLUICE_KAFKA_HOME"
        mkdir -p "$CACHE" 2>/dev/null || die "cannot create SLUICE_KAFKA_HOME=$CACHE"
    else
        CACHE=/var/cache/sluice/kafka
        if ! { mkdir -p "$CACHE" 2>/dev/null && [[ -w "$CACHE" ]]; }; then
            CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/sluice/kafka"
            log "/var/cache/sluice/kafka is not writable; using $CACHE (set SLUICE_KAFKA_HOME to choose)"
            mkdir -p "$CACHE" || die "cannot create $CACHE"
        fi
    fi
    [[ -w "$CACHE" ]] || die "cache dir $CACHE is not writable"
    CACHE="$(cd "$CACHE" && pwd)"
    LIB="${SLUICE_KAFKA_LIB:-$CACHE/lib}"
    CONF="$CACHE/config"
    DATA="$CACHE/data"
    LOGDIR="$CACHE/logs"
    LOGDATA="$DATA/kraft-combined-logs"
    PIDFILE="$CACHE/kafka.pid"
    STAMP="$LIB/.stamp"
    CLASSIDX="$LIB/.classes"
    SERVER_PROPS="$CONF/server.properties"
    SERVER_LOG="$LOGDIR/server.log"
    OUT_LOG="$LOGDIR/kafka.out"
}

# Serialise fetch/start/stop/reset across concurrent callers (e.g. several test
# binaries each running `kafka.sh start`). fd 9 stays open for the script's life.
take_lock() {
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$CACHE/.lock"
        flock -w 300 9 || die "timed out waiting for $CACHE/.lock (another kafka.sh is stuck?)"
    fi
}

find_java() {
    if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
        JAVA="$JAVA_HOME/bin/java"
    elif command -v java >/dev/null 2>&1; then
        JAVA="$(command -v java)"
    else
        die "java not found (install a JDK/JRE 17+, e.g. 'apt-get install openjdk-17-jre-headless', or set JAVA_HOME)"
    fi
    local v
    v="$("$JAVA" -version 2>&1 | sed -n '1s/.*version "\([0-9]*\).*/\1/p')"
    if [[ -n "$v" && "$v" -lt 17 ]]; then
        die "$JAVA is Java $v; Kafka 4.x needs Java 17+"
    fi
}

# -------------------------------------------------------------------- fetch --
pom_hash() { sha256sum "$POM" | cut -d' ' -f1; }

fetched_ok() {
    [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(pom_hash)" ]] &&
        compgen -G "$LIB/kafka_2.13-*.jar" >/dev/null &&
        compgen -G "$LIB/kafka-tools-[0-9]*.jar" >/dev/null
}

# Print the class names (a.b.C) contained in the kafka jars of directory $1.
index_classes() {
    local dir="$1" j
    for j in "$dir"/kafka*.jar; do
        if command -v jar >/dev/null 2>&1; then
            jar tf "$j"
        elif command -v unzip >/dev/null 2>&1; then
            unzip -Z1 "$j"
        elif command -v python3 >/dev/null 2>&1; then
            python3 -c 'import sys,zipfile; print("\n".join(zipfile.ZipFile(sys.argv[1]).namelist()))' "$j"
        else
            return 1
        fi
    done | sed -n 's#\.class$##p' | grep -v '\$' | tr / . | sort -u
}

# alias -> candidate main classes (first one present in the jars wins)
alias_candidates() {
    case "$1" in
        topics)           echo org.apache.kafka.tools.TopicCommand kafka.admin.TopicCommand ;;
        console-producer) echo org.apache.kafka.tools.ConsoleProducer kafka.tools.ConsoleProducer ;;
        console-consumer) echo org.apache.kafka.tools.consumer.ConsoleConsumer org.apache.kafka.tools.ConsoleConsumer kafka.tools.ConsoleConsumer ;;
        consumer-groups)  echo org.apache.kafka.tools.consumer.group.ConsumerGroupCommand kafka.admin.ConsumerGroupCommand ;;
        metadata-quorum)  echo org.apache.kafka.tools.MetadataQuorumCommand ;;
        get-offsets)      echo org.apache.kafka.tools.GetOffsetShell kafka.tools.GetOffsetShell ;;
        api-versions)     echo org.apache.kafka.tools.BrokerApiVersionsCommand kafka.admin.BrokerApiVersionsCommand ;;
        storage)          echo kafka.tools.StorageTool ;;
        *) return 1 ;;
    esac
}
ALIASES="topics console-producer console-consumer consumer-groups metadata-quorum get-offsets api-versions storage"

# resolve_class <alias|Class> [index-file] -> prints the main class
resolve_class() {
    local name="$1" idx="${2:-$CLASSIDX}" c cands
    if ! cands="$(alias_candidates "$name")"; then
        echo "$name"; return 0
    fi
    if [[ -s "$idx" ]]; then
        for c in $cands; do
            if grep -qxF "$c" "$idx"; then echo "$c"; return 0; fi
        done
        return 1
    fi
    set -- $cands; echo "$1"   # no index available: trust the first candidate
}

do_fetch() {
    if fetched_ok; then
        log "jars up to date in $LIB ($(ls "$LIB"/kafka_2.13-*.jar | sed 's#.*/kafka_2.13-##; s#\.jar$##'))"
        return 0
    fi
    command -v mvn >/dev/null 2>&1 || die "mvn not found; needed once to fetch Kafka (apt-get install maven)"
    [[ -f "$POM" ]] || die "missing $POM"
    local t0=$SECONDS stage="$CACHE/lib.new" mvnargs=(-q -B -Dstyle.color=never -f "$POM")
    [[ -n "${SLUICE_KAFKA_M2:-}" ]] && mvnargs+=("-Dmaven.repo.local=$SLUICE_KAFKA_M2")
    log "fetching Kafka jars with maven into $LIB ..."
    # Stage into a fresh dir and swap, so a version bump never leaves a mixed classpath.
    rm -rf "$stage"
    if ! mvn "${mvnargs[@]}" dependency:copy-dependencies -DoutputDirectory="$stage" >"$CACHE/fetch.log" 2>&1; then
        tail -n 40 "$CACHE/fetch.log" >&2
        die "maven could not fetch the Kafka jars (full output: $CACHE/fetch.log)"
    fi
    compgen -G "$stage/kafka_2.13-*.jar" >/dev/null || die "fetch produced no kafka_2.13 jar in $stage"
    compgen -G "$stage/kafka-tools-[0-9]*.jar" >/dev/null || die "fetch produced no kafka-tools jar in $stage"
    compgen -G "$stage/log4j-core-*.jar" >/dev/null || die "fetch produced no log4j-core jar in $stage"
    if index_classes "$stage" >"$stage/.classes"; then
        local a missing=""
        for a in $ALIASES; do
            resolve_class "$a" "$stage/.classes" >/dev/null || missing+=" $a($(alias_candidates "$a"))"
        done
        grep -qxF kafka.Kafka "$stage/.classes" || missing+=" broker(kafka.Kafka)"
        [[ -z "$missing" ]] || die "fetched jars lack the main classes for:$missing"
    else
        rm -f "$stage/.classes"
        log "warning: no jar/unzip/python3 to index classes; tool aliases are not verified"
    fi
    rm -rf "$LIB"
    mv "$stage" "$LIB"
    pom_hash >"$STAMP"
    log "fetched $(ls "$LIB"/*.jar | wc -l) jars ($(du -sh "$LIB" | cut -f1)) in $((SECONDS - t0))s"
}

ensure_fetched() { fetched_ok || do_fetch; }

# ------------------------------------------------------------------ process --
# Is $1 a live broker started from this cache dir?
is_our_broker() {
    local pid="$1" cmd
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    local comm=""
    read -r comm 2>/dev/null <"/proc/$pid/comm" || return 1
    [[ "$comm" == java ]] || return 1
    cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
    [[ "$cmd" == *" kafka.Kafka $SERVER_PROPS"* ]]
}

# Print the broker's pid (pid file first, then a /proc scan), or fail.
broker_pid() {
    local pid p
    if [[ -f "$PIDFILE" ]]; then
        pid="$(cat "$PIDFILE" 2>/dev/null || true)"
        if is_our_broker "$pid"; then echo "$pid"; return 0; fi
    fi
    for p in /proc/[0-9]*; do
        pid="${p#/proc/}"
        if is_our_broker "$pid"; then echo "$pid" >"$PIDFILE"; echo "$pid"; return 0; fi
    done
    return 1
}

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null; }

port_owner() {
    if command -v ss >/dev/null 2>&1; then
        ss -Hltnp "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\(.*\))).*/\1/p' | head -n1
    fi
}

write_log4j() {
    mkdir -p "$CONF" "$LOGDIR"
    cat >"$CONF/log4j2.properties" <<EOF
# generated by scripts/kafka.sh: broker logs -> $SERVER_LOG
status = warn
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = $SERVER_LOG
appender.file.filePattern = $SERVER_LOG.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = info
rootLogger.appenderRef.file.ref = FILE
logger.request.name = kafka.request.logger
logger.request.level = warn
logger.state.name = state.change.logger
logger.state.level = warn
logger.clients.name = org.apache.kafka.clients
logger.clients.level = warn
EOF
    cat >"$CONF/tools-log4j2.properties" <<'EOF'
# generated by scripts/kafka.sh: CLI tools log warnings to stderr only
status = warn
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.err.ref = STDERR
EOF
}

write_server_props() {
    mkdir -p "$CONF" "$LOGDATA"
    cat >"$SERVER_PROPS" <<EOF
# generated by scripts/kafka.sh on every start; edit the script, not this file
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$CPORT
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CPORT
advertised.listeners=PLAINTEXT://$HOST:$PORT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$LOGDATA
num.partitions=4
auto.create.topics.enable=true
delete.topic.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.recovery.threads.per.data.dir=1
num.network.threads=2
num.io.threads=4
EOF
    if [[ -n "${SLUICE_KAFKA_EXTRA_PROPS:-}" ]]; then
        printf '# SLUICE_KAFKA_EXTRA_PROPS\n%s\n' "$SLUICE_KAFKA_EXTRA_PROPS" >>"$SERVER_PROPS"
    fi
}

tool_jvm_opts() {
    echo "-Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true -Dlog4j2.shutdownHookEnabled=false" \
         "-Dlog4j2.configurationFile=$CONF/tools-log4j2.properties"
}

# Run a tool class in the foreground (used internally; output to caller).
run_tool() {
    local cls="$1"; shift
    # shellcheck disable=SC2046
    "$JAVA" $(tool_jvm_opts) -cp "$LIB/*" "$cls" "$@"
}

format_storage() {
    if [[ -f "$LOGDATA/meta.properties" ]]; then
        return 0
    fi
    local id
    id="$(run_tool kafka.tools.StorageTool random-uuid 2>>"$LOGDIR/format.log" | tail -n1)" ||
        die "StorageTool random-uuid failed (see $LOGDIR/format.log)"
    [[ -n "$id" ]] || die "StorageTool random-uuid printed nothing (see $LOGDIR/format.log)"
    log "formatting KRaft storage in $LOGDATA (cluster id $id)"
    if ! run_tool kafka.tools.StorageTool format -t "$id" -c "$SERVER_PROPS" --ignore-formatted \
            >>"$LOGDIR/format.log" 2>&1; then
        tail -n 40 "$LOGDIR/format.log" >&2
        die "formatting storage failed (kafka.tools.StorageTool format; log: $LOGDIR/format.log)"
    fi
}

# Real metadata round trip: list topics through the admin client.
broker_answers() {
    port_open "$PORT" || return 1
    printf 'request.timeout.ms=5000\ndefault.api.timeout.ms=8000\n' >"$CONF/probe.properties"
    timeout 30 "$JAVA" $(tool_jvm_opts) -cp "$LIB/*" org.apache.kafka.tools.TopicCommand \
        --bootstrap-server "$BOOTSTRAP" --command-config "$CONF/probe.properties" --list \
        >/dev/null 2>&1
}

show_log_tail() {
    local f
    for f in "$SERVER_LOG" "$OUT_LOG"; do
        if [[ -s "$f" ]]; then
            printf -- '----- last 40 lines of %s -----\n' "$f" >&2
            tail -n 40 "$f" >&2
        fi
    done
}

# listeners= line of the config the running broker was started with
running_listeners() { sed -n 's/^listeners=//p' "$SERVER_PROPS" 2>/dev/null; }
WANT_LISTENERS="PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CPORT"

do_start() {
    find_java
    local pid
    if pid="$(broker_pid)"; then
        local have
        have="$(running_listeners)"
        if [[ "$have" != "$WANT_LISTENERS" ]]; then
            die "a broker from $CACHE is already running (pid $pid) with listeners '$have', but '$WANT_LISTENERS' was requested; run 'scripts/kafka.sh stop' first or use another SLUICE_KAFKA_HOME"
        fi
        if broker_answers; then
            log "already running (pid $pid) and answering at $BOOTSTRAP"
            echo "$BOOTSTRAP"
            return 0
        fi
        log "broker process $pid exists but does not answer yet; waiting for it"
    else
        rm -f "$PIDFILE"
        local p owner
        for p in "$PORT" "$CPORT"; do
            if port_open "$p"; then
                owner="$(port_owner "$p")"
                die "port $HOST:$p is already in use by another process${owner:+ ($owner)}; stop it or set SLUICE_KAFKA_PORT / SLUICE_KAFKA_CONTROLLER_PORT"
            fi
        done
        ensure_fetched
        write_log4j
        write_server_props
        format_storage
        [[ -f "$OUT_LOG" ]] && mv -f "$OUT_LOG" "$OUT_LOG.prev"
        log "starting Kafka $(ls "$LIB"/kafka_2.13-*.jar | sed 's#.*/kafka_2.13-##; s#\.jar$##') on $BOOTSTRAP (controller $HOST:$CPORT, home $CACHE)"
        # setsid + nohup: the broker must outlive the shell / test that started it.
        # Close fd 9 (the lock) in the child so it does not hold the lock forever.
        setsid nohup "$JAVA" -Xms128m "-Xmx$HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
            -XX:MaxInlineLevel=15 -Djava.awt.headless=true \
            "-Dlog4j2.configurationFile=$CONF/log4j2.properties" -Dlog4j2.shutdownHookEnabled=false \
            "-Dkafka.logs.dir=$LOGDIR" \
            -cp "$LIB/*" kafka.Kafka "$SERVER_PROPS" \
            >"$OUT_LOG" 2>&1 </dev/null 9>&- &
        pid=$!
        local i
        for i in 1 2 3 4 5 6 7 8 9 10; do
            is_our_broker "$pid" && break
            sleep 0.2
        done
        is_our_broker "$pid" || pid="$(broker_pid)" || {
            show_log_tail
            die "the broker JVM exited immediately (log: $OUT_LOG)"
        }
        echo "$pid" >"$PIDFILE"
    fi

    local deadline=$((SECONDS + START_TIMEOUT))
    while :; do
        if ! is_our_broker "$pid"; then
            show_log_tail
            rm -f "$PIDFILE"
            die "the broker (pid $pid) died during startup; logs: $SERVER_LOG, $OUT_LOG"
        fi
        if broker_answers; then break; fi
        if ((SECONDS >= deadline)); then
            show_log_tail
            die "broker (pid $pid) did not answer on $BOOTSTRAP within ${START_TIMEOUT}s; it is left running (scripts/kafka.sh stop); logs: $SERVER_LOG"
        fi
        sleep 1
    done
    log "Kafka is up (pid $pid)"
    echo "$BOOTSTRAP"
}

do_stop() {
    local pid
    if ! pid="$(broker_pid)"; then
        rm -f "$PIDFILE"
        log "not running"
        return 0
    fi
    log "stopping broker (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + STOP_TIMEOUT))
    while is_our_broker "$pid"; do
        if ((SECONDS >= deadline)); then
            log "still alive after ${STOP_TIMEOUT}s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
            break
        fi
        sleep 0.2
    done
    is_our_broker "$pid" && die "could not stop pid $pid"
    rm -f "$PIDFILE"
    log "stopped"
}

do_kill9() {
    local pid
    if ! pid="$(broker_pid)"; then
        rm -f "$PIDFILE"
        log "not running"
        return 0
    fi
    kill -KILL "$pid" 2>/dev/null || true
    local i
    for i in $(seq 50); do is_our_broker "$pid" || break; sleep 0.1; done
    is_our_broker "$pid" && die "pid $pid survived SIGKILL"
    rm -f "$PIDFILE"
    log "killed broker (pid $pid) with SIGKILL"
}

do_status() {
    local pid version="not fetched"
    fetched_ok && version="$(ls "$LIB"/kafka_2.13-*.jar | sed 's#.*/kafka_2.13-##; s#\.jar$##')"
    echo "home:      $CACHE"
    echo "kafka:     $version"
    echo "bootstrap: $BOOTSTRAP"
    if pid="$(broker_pid)"; then
        local have
        have="$(running_listeners)"
        if [[ "$have" != "$WANT_LISTENERS" ]]; then
            echo "state:     running (pid $pid) with listeners $have, not the requested ports"
            return 1
        fi
        find_java
        if broker_answers; then
            echo "state:     running (pid $pid), answering"
            return 0
        fi
        echo "state:     running (pid $pid), NOT answering"
        return 1
    fi
    echo "state:     stopped"
    return 3
}

do_reset() {
    do_stop
    rm -rf "$DATA"
    log "wiped $DATA"
}

do_tool() {
    [[ $# -ge 1 ]] || die "usage: kafka.sh tool <MainClass|alias> [args...]; aliases: $ALIASES"
    local name="$1" cls; shift
    find_java
    if ! fetched_ok; then
        take_lock
        ensure_fetched
        exec 9>&-   # release the lock; the tool must not hold it
    fi
    cls="$(resolve_class "$name")" || die "no main class for alias '$name' in $LIB (tried: $(alias_candidates "$name"))"
    [[ -f "$CONF/tools-log4j2.properties" ]] || write_log4j
    # shellcheck disable=SC2046
    exec "$JAVA" $(tool_jvm_opts) -cp "$LIB/*" "$cls" "$@"
}

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

main() {
    local cmd="${1:-}"
    [[ $# -gt 0 ]] && shift
    case "$cmd" in
        -h|--help|help) usage; return 0 ;;
        "") usage >&2; return 2 ;;
    esac
    choose_cache
    case "$cmd" in
        fetch)     take_lock; do_fetch ;;
        start)     take_lock; do_start ;;
        stop)      take_lock; do_stop ;;
        reset)     take_lock; do_reset ;;
        kill9)     take_lock; do_kill9 ;;
        status)    do_status ;;
        bootstrap) echo "$BOOTSTRAP" ;;
        tool)      do_tool "$@" ;;
        logs)      tail -n "${1:-40}" "$SERVER_LOG" ;;
        *) usage >&2; die "unknown command '$cmd'" ;;
    esac
}

main "$@"

#!/usr/bin/env bash
# Run the real Apache Kafka 4.x broker (single node, KRaft combined
# broker+controller) on 127.0.0.1 for clickgate tests. No Docker: the jars come
# from Maven Central via pom.xml and the broker runs as a plain `java` process.
#
# Usage: configs/kafka/kafka.sh <command>
#   up        fetch jars if needed, format storage if needed, start the broker,
#             wait until it answers a metadata request (idempotent)
#   start     same as up; existing data (topics, offsets) is reused
#   stop      stop the broker (SIGTERM, then SIGKILL), KEEP the data
#   restart   stop + start, data kept
#   down      stop the broker and delete the runtime data (KEEP=1 keeps it)
#   status    print whether the broker runs; exit 0 if up, 1 if not
#   env       print CLICKGATE_KAFKA_BROKERS=127.0.0.1:<port>
#   fetch     only download the jars into the cache
#   logs [N]  print the last N (default 100) lines of the broker log
#   tool CLASS [ARGS...]
#             run a Kafka CLI class with the broker classpath, e.g.
#             tool org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:9092 --list
#
# Environment:
#   CLICKGATE_KAFKA_PORT             client port (default 9092)
#   CLICKGATE_KAFKA_CONTROLLER_PORT  KRaft controller port (default PORT+1)
#   CLICKGATE_KAFKA_RUN              runtime dir: data, logs, pid (default configs/kafka/.run)
#   CLICKGATE_KAFKA_CACHE            jar cache dir; jars go to $CACHE/libs (default configs/kafka/.cache)
#   CLICKGATE_KAFKA_HEAP_OPTS        broker heap (default "-Xms256m -Xmx512m")
#   CLICKGATE_KAFKA_JVM_OPTS         extra broker JVM options
#   CLICKGATE_KAFKA_READY_TIMEOUT    seconds to wait for readiness (default 60)
#   CLICKGATE_KAFKA_STOP_TIMEOUT     seconds to wait after SIGTERM before SIGKILL (default 30)
#   CLICKGATE_KAFKA_CDS=0            disable the AppCDS class-data archives (see README)
#   KEEP=1                           `down` keeps the runtime data
#   JAVA_HOME                        Java 17+ to use (default: java on PATH)

set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
readonly SCRIPT_DIR
readonly HOST=127.0.0.1

die() {
	printf 'kafka.sh: error: %s\n' "$*" >&2
	exit 1
}

# abspath DIR: make DIR absolute (relative to the caller's cwd) without requiring it to exist.
abspath() {
	case $1 in
	/*) printf '%s' "$1" ;;
	*) printf '%s/%s' "$PWD" "$1" ;;
	esac
}

PORT=${CLICKGATE_KAFKA_PORT:-9092}
valid_port() {
	[[ $1 =~ ^[0-9]{1,5}$ ]] && (($1 > 0 && $1 < 65536))
}
valid_port "$PORT" || die "CLICKGATE_KAFKA_PORT must be a TCP port, got '$PORT'"
CONTROLLER_PORT=${CLICKGATE_KAFKA_CONTROLLER_PORT:-$((PORT + 1))}
valid_port "$CONTROLLER_PORT" || die "CLICKGATE_KAFKA_CONTROLLER_PORT must be a TCP port, got '$CONTROLLER_PORT'"
((CONTROLLER_PORT != PORT)) || die "client and controller port must differ (both $PORT)"

RUN_DIR=$(abspath "${CLICKGATE_KAFKA_RUN:-$SCRIPT_DIR/.run}")
CACHE_DIR=$(abspath "${CLICKGATE_KAFKA_CACHE:-$SCRIPT_DIR/.cache}")
LIBS_DIR=$CACHE_DIR/libs
DATA_DIR=$RUN_DIR/data
LOG_DIR=$RUN_DIR/logs
PID_FILE=$RUN_DIR/kafka.pid
PROPS_FILE=$RUN_DIR/server.properties
READY_TIMEOUT=${CLICKGATE_KAFKA_READY_TIMEOUT:-60}
STOP_TIMEOUT=${CLICKGATE_KAFKA_STOP_TIMEOUT:-30}
[[ $READY_TIMEOUT =~ ^[0-9]+$ ]] || die "CLICKGATE_KAFKA_READY_TIMEOUT must be whole seconds"
[[ $STOP_TIMEOUT =~ ^[0-9]+$ ]] || die "CLICKGATE_KAFKA_STOP_TIMEOUT must be whole seconds"
read -r -a HEAP_OPTS <<<"${CLICKGATE_KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
read -r -a EXTRA_JVM_OPTS <<<"${CLICKGATE_KAFKA_JVM_OPTS:-}"
if [[ -n ${JAVA_HOME:-} && -x $JAVA_HOME/bin/java ]]; then
	JAVA=$JAVA_HOME/bin/java
else
	JAVA=java
fi
BROKERS=$HOST:$PORT

KAFKA_VERSION=$(sed -n 's:.*<kafka\.version>\(.*\)</kafka\.version>.*:\1:p' "$SCRIPT_DIR/pom.xml")
[[ -n $KAFKA_VERSION ]] || die "cannot read <kafka.version> from $SCRIPT_DIR/pom.xml"

# Short-lived CLI JVMs: small heap, C1 only, quiet logging (and JVM warnings) to stderr.
TOOL_JVM_OPTS=(-Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true
	-Xlog:disable -Xlog:all=warning:stderr
	"-Dlog4j2.configurationFile=$SCRIPT_DIR/tools-log4j2.properties")

# AppCDS (class-data sharing) archives cut JVM startup roughly in half on this
# 2-core class of machine (broker ~5.7 s -> ~3.5 s, CLI ~1.6 s -> ~0.8 s). They live
# inside the libs dir (so a re-fetch drops them) and are keyed by the JVM build.
# The first run of a kind dumps its loaded classes at exit into a temp file that is
# renamed into place only after that JVM exited normally.
CDS_DIR=$LIBS_DIR/.cds
JAVA_VM_KEY=
CDS_ARGS=()
CDS_PENDING=

# ---------------------------------------------------------------- locking

# lock NAME: serialize concurrent kafka.sh invocations (fd 9; closed for the broker JVM).
lock() {
	command -v flock >/dev/null 2>&1 || return 0
	mkdir -p -- "$1"
	exec 9>"$1/.lock"
	flock -w 600 9 || die "timed out waiting for lock $1/.lock"
}

# ---------------------------------------------------------------- jars

stamp_content() {
	printf 'kafka_2.13 %s pom-sha256 %s\n' "$KAFKA_VERSION" "$(sha256sum <"$SCRIPT_DIR/pom.xml" | cut -d' ' -f1)"
}

libs_complete() {
	[[ -f $LIBS_DIR/.complete && "$(<"$LIBS_DIR/.complete")" == "$(stamp_content)" ]]
}

fetch() {
	libs_complete && return 0
	command -v mvn >/dev/null 2>&1 || die "mvn (Maven) not found on PATH; it is needed once to download the Kafka jars"
	mkdir -p -- "$CACHE_DIR"
	local tmp log
	tmp=$(mktemp -d "$CACHE_DIR/libs.tmp.XXXXXX")
	log=$tmp.mvn.log
	printf 'kafka.sh: fetching Apache Kafka %s jars from Maven Central into %s ...\n' "$KAFKA_VERSION" "$LIBS_DIR" >&2
	if ! mvn -q -B -f "$SCRIPT_DIR/pom.xml" dependency:copy-dependencies \
		"-Dclickgate.kafka.libs=$tmp" </dev/null >"$log" 2>&1; then
		tail -n 40 -- "$log" >&2
		rm -rf -- "$tmp" "$log"
		die "Maven could not download the Kafka $KAFKA_VERSION jars (see output above)"
	fi
	[[ -f $tmp/kafka_2.13-$KAFKA_VERSION.jar ]] || {
		rm -rf -- "$tmp" "$log"
		die "Maven finished but kafka_2.13-$KAFKA_VERSION.jar is missing"
	}
	stamp_content >"$tmp/.complete"
	rm -rf -- "$LIBS_DIR" "$log"
	mv -- "$tmp" "$LIBS_DIR"
}

# ---------------------------------------------------------------- process helpers

check_java() {
	command -v "$JAVA" >/dev/null 2>&1 || die "java not found (install Java 17+ or set JAVA_HOME)"
	local props spec
	props=$("$JAVA" -XshowSettings:properties -version 2>&1)
	spec=$(sed -n 's/^ *java\.specification\.version = //p' <<<"$props")
	if ! [[ $spec =~ ^[0-9]+$ ]] || ((spec < 17)); then
		die "Kafka $KAFKA_VERSION needs Java 17+, $JAVA is '${spec:-unknown}'"
	fi
	JAVA_VM_KEY=$(sed -n 's/^ *java\.vm\.version = //p' <<<"$props" | tr -c 'A-Za-z0-9._\n-' '_')
}

# cds_args KIND [create]: set CDS_ARGS to use the KIND archive if it exists, else (with
# "create") to dump one at exit into CDS_PENDING, which promote_cds later renames.
cds_args() {
	CDS_ARGS=()
	CDS_PENDING=
	[[ ${CLICKGATE_KAFKA_CDS:-1} == 1 && -n $JAVA_VM_KEY ]] || return 0
	local jsa=$CDS_DIR/$1-$JAVA_VM_KEY.jsa
	if [[ -s $jsa ]]; then
		CDS_ARGS=(-Xshare:auto "-XX:SharedArchiveFile=$jsa")
	elif [[ ${2:-} == create ]] && mkdir -p -- "$CDS_DIR" 2>/dev/null; then
		CDS_PENDING=$jsa.tmp.$$.$RANDOM
		CDS_ARGS=("-XX:ArchiveClassesAtExit=$CDS_PENDING")
	fi
}

# promote_cds TMPFILE: move a dumped archive into place (name = TMPFILE without .tmp.*).
promote_cds() {
	[[ -n ${1:-} ]] || return 0
	if [[ -s $1 ]]; then
		mv -f -- "$1" "${1%.tmp.*}" 2>/dev/null || rm -f -- "$1"
	else
		rm -f -- "$1"
	fi
}

# alive PID: process exists and is not a zombie.
alive() {
	kill -0 "$1" 2>/dev/null || return 1
	if [[ -r /proc/$1/stat ]]; then
		local stat
		stat=$(<"/proc/$1/stat") || return 1
		stat=${stat##*) }
		[[ ${stat%% *} != Z ]] || return 1
	fi
	return 0
}

# our_broker PID: alive and really the broker of this runtime dir (guards against PID reuse).
our_broker() {
	alive "$1" || return 1
	if [[ -r /proc/$1/cmdline ]]; then
		local cmd
		cmd=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) || return 1
		[[ $cmd == *kafka.Kafka* && $cmd == *"$PROPS_FILE"* ]] || return 1
	fi
	return 0
}

# running_pid: print the broker PID and succeed if the broker of this runtime dir runs.
running_pid() {
	[[ -f $PID_FILE ]] || return 1
	local pid
	pid=$(<"$PID_FILE")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	our_broker "$pid" || return 1
	printf '%s' "$pid"
}

port_open() {
	(exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

log_tail() {
	local f
	for f in "$LOG_DIR/kafka.out" "$LOG_DIR/server.log"; do
		[[ -s $f ]] || continue
		printf -- '---- last lines of %s ----\n' "$f" >&2
		tail -n "${1:-40}" -- "$f" >&2
	done
}

# run_tool CLASS ARGS...: run a Kafka CLI class with the cached jars
# (uses the tools CDS archive if one exists; only the readiness probe creates it).
run_tool() {
	cds_args tools
	"$JAVA" "${TOOL_JVM_OPTS[@]}" "${CDS_ARGS[@]}" -cp "$LIBS_DIR/*" "$@"
}

# ---------------------------------------------------------------- broker lifecycle

render_props() {
	local line out=()
	while IFS= read -r line || [[ -n $line ]]; do
		line=${line//@PORT@/$PORT}
		line=${line//@CONTROLLER_PORT@/$CONTROLLER_PORT}
		line=${line//@DATA_DIR@/$DATA_DIR}
		out+=("$line")
	done <"$SCRIPT_DIR/server.properties"
	printf '%s\n' "${out[@]}" >"$PROPS_FILE.tmp"
	mv -- "$PROPS_FILE.tmp" "$PROPS_FILE"
}

# Kafka cluster IDs are 16 random bytes, URL-safe base64 without padding (22 chars),
# same as `kafka-storage.sh random-uuid` (which also never starts with '-').
gen_cluster_id() {
	local id
	while :; do
		id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
		[[ ${#id} == 22 && $id != -* ]] && break
	done
	printf '%s' "$id"
}

format_storage() {
	[[ -f $DATA_DIR/meta.properties ]] && return 0
	local cid
	cid=$(gen_cluster_id)
	rm -rf -- "$DATA_DIR"
	mkdir -p -- "$DATA_DIR"
	if ! run_tool kafka.tools.StorageTool format --standalone --cluster-id "$cid" \
		--config "$PROPS_FILE" </dev/null >"$LOG_DIR/format.log" 2>&1 9>&-; then
		cat -- "$LOG_DIR/format.log" >&2
		rm -rf -- "$DATA_DIR"
		die "formatting KRaft storage in $DATA_DIR failed"
	fi
	printf '%s\n' "$cid" >"$RUN_DIR/cluster.id"
}

launch() {
	local jvm=(
		"${HEAP_OPTS[@]}"
		-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
		-XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError
		"-XX:ErrorFile=$LOG_DIR/hs_err_pid%p.log"
		-Djava.awt.headless=true
		"-Dkafka.logs.dir=$LOG_DIR"
		"-Dlog4j2.configurationFile=$SCRIPT_DIR/log4j2.properties"
	)
	if [[ -f $RUN_DIR/cds.pending ]]; then
		# left over from a broker that died on its own: discard, it may be partial
		rm -f -- "$(<"$RUN_DIR/cds.pending")" "$RUN_DIR/cds.pending"
	fi
	cds_args broker create
	jvm+=("${CDS_ARGS[@]}" "${EXTRA_JVM_OPTS[@]}")
	if [[ -n $CDS_PENDING ]]; then
		printf '%s\n' "$CDS_PENDING" >"$RUN_DIR/cds.pending"
	else
		rm -f -- "$RUN_DIR/cds.pending"
	fi
	rm -f -- "$PID_FILE"
	{
		printf '\n==== %s starting Kafka %s on %s (controller %s)\n' \
			"$(date '+%Y-%m-%dT%H:%M:%S%z')" "$KAFKA_VERSION" "$BROKERS" "$HOST:$CONTROLLER_PORT"
	} >>"$LOG_DIR/kafka.out"
	# New session (no SIGINT/SIGHUP from the caller's terminal or process group), stdio
	# detached from the caller (a `go test` exec.Cmd pipe would otherwise never close),
	# lock fd closed. The inner bash records its own PID, then execs java with that PID.
	local launcher=()
	command -v setsid >/dev/null 2>&1 && launcher=(setsid)
	# shellcheck disable=SC2016 # $$/$1/$@ are expanded by the inner bash
	"${launcher[@]}" bash -c 'printf "%s\n" "$$" >"$1"; shift; exec "$@"' kafka-launch "$PID_FILE" \
		"$JAVA" "${jvm[@]}" -cp "$LIBS_DIR/*" kafka.Kafka "$PROPS_FILE" \
		</dev/null >>"$LOG_DIR/kafka.out" 2>&1 9>&- &
	local i
	for ((i = 0; i < 100; i++)); do
		[[ -s $PID_FILE ]] && break
		sleep 0.05
	done
	[[ -s $PID_FILE ]] || die "broker launcher did not write $PID_FILE"
}

# wait_ready PID: wait until the broker answers a real metadata request (AdminClient listTopics).
wait_ready() {
	local pid=$1 deadline=$((SECONDS + READY_TIMEOUT))
	while ! port_open "$PORT"; do
		alive "$pid" || {
			log_tail
			die "Kafka broker (pid $pid) exited during startup"
		}
		((SECONDS < deadline)) || fail_start "$pid" "port $PORT not open after ${READY_TIMEOUT}s"
		sleep 0.2
	done
	local remaining=$((deadline - SECONDS))
	((remaining >= 5)) || remaining=5
	printf 'request.timeout.ms=5000\ndefault.api.timeout.ms=%d\nretry.backoff.ms=200\n' \
		$((remaining * 1000)) >"$RUN_DIR/probe-client.properties"
	cds_args tools create
	local probe_cds=$CDS_PENDING
	"$JAVA" "${TOOL_JVM_OPTS[@]}" "${CDS_ARGS[@]}" -cp "$LIBS_DIR/*" \
		org.apache.kafka.tools.TopicCommand --bootstrap-server "$BROKERS" --list \
		--command-config "$RUN_DIR/probe-client.properties" \
		</dev/null >"$LOG_DIR/probe.out" 2>&1 9>&- &
	local probe=$!
	while alive "$probe"; do
		if ! alive "$pid"; then
			kill "$probe" 2>/dev/null || true
			wait "$probe" 2>/dev/null || true
			log_tail
			die "Kafka broker (pid $pid) exited during startup"
		fi
		if ((SECONDS >= deadline + 5)); then
			kill "$probe" 2>/dev/null || true
			wait "$probe" 2>/dev/null || true
			fail_start "$pid" "no metadata answer within ${READY_TIMEOUT}s"
		fi
		sleep 0.2
	done
	if ! wait "$probe"; then
		rm -f -- "$probe_cds"
		cat -- "$LOG_DIR/probe.out" >&2
		fail_start "$pid" "metadata probe (TopicCommand --list) failed"
	fi
	promote_cds "$probe_cds"
}

fail_start() {
	log_tail 60
	printf 'kafka.sh: stopping the unready broker (pid %s)\n' "$1" >&2
	terminate "$1" >/dev/null
	die "Kafka broker on $BROKERS not ready: $2"
}

# terminate PID: SIGTERM, wait STOP_TIMEOUT, then SIGKILL.
terminate() {
	local pid=$1 deadline=$((SECONDS + STOP_TIMEOUT)) killed=0
	kill -TERM "$pid" 2>/dev/null || true
	while alive "$pid"; do
		if ((SECONDS >= deadline)); then
			printf 'kafka.sh: broker pid %s ignored SIGTERM for %ss, sending SIGKILL\n' "$pid" "$STOP_TIMEOUT" >&2
			kill -KILL "$pid" 2>/dev/null || true
			killed=1
			local i
			for ((i = 0; i < 50; i++)); do
				alive "$pid" || break
				sleep 0.1
			done
			break
		fi
		sleep 0.1
	done
	rm -f -- "$PID_FILE"
	# The JVM dumps a pending CDS archive while exiting; keep it only after a clean exit.
	if [[ -f $RUN_DIR/cds.pending ]]; then
		local jsa
		jsa=$(<"$RUN_DIR/cds.pending")
		rm -f -- "$RUN_DIR/cds.pending"
		if ((killed)); then rm -f -- "$jsa"; else promote_cds "$jsa"; fi
	fi
}

cmd_start() {
	lock "$RUN_DIR"
	local pid
	if pid=$(running_pid); then
		printf 'kafka already running on %s (pid %s)\n' "$BROKERS" "$pid"
		return 0
	fi
	local p
	for p in "$PORT" "$CONTROLLER_PORT"; do
		port_open "$p" && die "port $HOST:$p is already in use by another process (set CLICKGATE_KAFKA_PORT / CLICKGATE_KAFKA_CONTROLLER_PORT)"
	done
	check_java
	lock_cache_and_fetch
	mkdir -p -- "$LOG_DIR" "$DATA_DIR"
	render_props
	format_storage
	launch
	pid=$(<"$PID_FILE")
	wait_ready "$pid"
	printf 'kafka up on %s (pid %s)\n' "$BROKERS" "$pid"
}

# The cache lock is a different fd so that fetch never holds the runtime lock fd.
lock_cache_and_fetch() {
	libs_complete && return 0
	mkdir -p -- "$CACHE_DIR"
	if command -v flock >/dev/null 2>&1; then
		(
			exec 8>"$CACHE_DIR/.lock"
			flock -w 900 8 || die "timed out waiting for lock $CACHE_DIR/.lock"
			fetch
		)
	else
		fetch
	fi
}

cmd_stop() {
	lock "$RUN_DIR"
	local pid
	if ! pid=$(running_pid); then
		rm -f -- "$PID_FILE"
		printf 'kafka not running\n'
		return 0
	fi
	terminate "$pid"
	printf 'kafka stopped (pid %s), data kept in %s\n' "$pid" "$DATA_DIR"
}

cmd_down() {
	cmd_stop >/dev/null
	if [[ ${KEEP:-0} == 1 ]]; then
		printf 'kafka down, data kept in %s (KEEP=1)\n' "$RUN_DIR"
		return 0
	fi
	# Remove only what kafka.sh creates, never an arbitrary CLICKGATE_KAFKA_RUN tree.
	rm -rf -- "$DATA_DIR" "$LOG_DIR"
	rm -f -- "$PID_FILE" "$PROPS_FILE" "$PROPS_FILE.tmp" "$RUN_DIR/cluster.id" "$RUN_DIR/cds.pending" \
		"$RUN_DIR/probe-client.properties" "$RUN_DIR/.lock"
	rmdir -- "$RUN_DIR" 2>/dev/null || true
	printf 'kafka down, data removed\n'
}

cmd_status() {
	local pid
	if pid=$(running_pid); then
		if port_open "$PORT"; then
			printf 'kafka running on %s (pid %s)\n' "$BROKERS" "$pid"
			return 0
		fi
		printf 'kafka starting or unhealthy: pid %s alive but %s not accepting connections\n' "$pid" "$BROKERS"
		return 1
	fi
	if [[ -f $DATA_DIR/meta.properties ]]; then
		printf 'kafka not running (data kept in %s)\n' "$DATA_DIR"
	else
		printf 'kafka not running\n'
	fi
	return 1
}

usage() {
	sed -n '2,/^$/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

main() {
	local cmd=${1:-}
	[[ $# -gt 0 ]] && shift
	case $cmd in
	up | start) cmd_start ;;
	stop) cmd_stop ;;
	restart)
		cmd_stop
		cmd_start
		;;
	down) cmd_down ;;
	status) cmd_status ;;
	env) printf 'CLICKGATE_KAFKA_BROKERS=%s\n' "$BROKERS" ;;
	fetch)
		lock_cache_and_fetch
		printf 'Kafka %s jars in %s\n' "$KAFKA_VERSION" "$LIBS_DIR"
		;;
	logs)
		local f=$LOG_DIR/server.log
		[[ -f $f ]] || die "no broker log at $f"
		tail -n "${1:-100}" -- "$f"
		;;
	tool)
		[[ $# -gt 0 ]] || die "usage: kafka.sh tool CLASS [ARGS...]"
		check_java
		lock_cache_and_fetch
		run_tool "$@"
		;;
	-h | --help | help) usage ;;
	'') usage >&2; exit 2 ;;
	*)
		usage >&2
		die "unknown command '$cmd'"
		;;
	esac
}

main "$@"

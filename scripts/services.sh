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

ensure_postgres
ensure_mysql
ensure_influx
echo "export CRYPTOFLOW_TEST_INFLUX_URL=${CRYPTOFLOW_TEST_INFLUX_URL:-http://127.0.0.1:${INFLUX_PORT}}"
echo "export CRYPTOFLOW_TEST_MYSQL_URL=${CRYPTOFLOW_TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306/test}"
echo "export CRYPTOFLOW_TEST_POSTGRES_URL=${CRYPTOFLOW_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

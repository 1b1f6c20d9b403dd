//! Tests against real services: PostgreSQL, MariaDB, InfluxDB, Redis, a Kafka-protocol broker and
//! the Python reference implementations, as `scripts/services.sh` installs and starts them. Built
//! only with the `services` feature (`scripts/test.sh` turns it on); a service the environment
//! does not name then fails its tests loudly.

#[path = "../support/mod.rs"]
mod support;

mod alerts;
mod api_fuzz;
mod backtest_reference;
mod bulk_reference;
mod cluster_kill;
mod damaged_files;
mod dashboard;
mod deploy;
mod execute_controls;
mod execute_e2e;
mod execute_kill;
mod executor_journal;
mod futures;
mod indicators_e2e;
mod influx_e2e;
mod kafka_crash;
mod kafka_e2e;
mod kafka_health;
mod kafka_unreachable;
mod migration_checksums;
mod mysql_e2e;
mod outage;
mod poll_e2e;
mod poll_exact_e2e;
mod postgres_e2e;
mod redis_e2e;
mod restart_resume;
mod secrets_cli;
mod serve_e2e;
mod shutdown;
mod signals_e2e;
mod sql_tables;
mod statefulset_cluster;
mod storage;
mod views;

//! Applied migrations carry the SHA-256 of their SQL: recorded when applied (the server's own
//! `sha256()` / `SHA2()` agrees), recorded for a database migrated before checksums, and a
//! migration changed after it was applied stops `migrate` with an error naming its file.

use crate::support as common;

use common::*;
use mysql_async::prelude::Queryable;

// Multi-threaded: the failed `migrate`'s connection must close (releasing its advisory lock)
// while this test waits for the CLI's own `migrate`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_migrations_are_checksummed() {
    use cryptoflow_sinks::postgres::{migrate, MIGRATIONS};
    let url = fresh_database("checksums").await;
    migrate(&url).await.expect("migrates");
    let c = pg_client(&url).await;
    for (version, name, sql) in MIGRATIONS {
        let row = c
            .query_one(
                "SELECT checksum = encode(sha256(convert_to($2, 'UTF8')), 'hex'), checksum \
                 FROM schema_migrations WHERE version = $1",
                &[version, sql],
            )
            .await
            .expect("recorded");
        assert!(
            row.get::<_, bool>(0),
            "{version} {name}: {:?}",
            row.get::<_, Option<String>>(1)
        );
    }
    // A database migrated before checksums: they are recorded, nothing is applied again.
    c.batch_execute("UPDATE schema_migrations SET checksum = NULL")
        .await
        .expect("clear");
    assert_eq!(migrate(&url).await.expect("migrates"), Vec::<i32>::new());
    let missing: i64 = c
        .query_one(
            "SELECT count(*) FROM schema_migrations WHERE checksum IS NULL",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(missing, 0);
    // The file of migration 3 differs from what was applied: a clear error naming it.
    c.batch_execute("UPDATE schema_migrations SET checksum = repeat('0', 64) WHERE version = 3")
        .await
        .expect("tamper");
    let err = migrate(&url).await.expect_err("changed").to_string();
    assert!(
        err.contains("sql/postgres/0003_source_offsets.sql") && err.contains("changed"),
        "{err}"
    );
    // The CLI says it once, and exits 1.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_cryptoflow"))
        .args(["migrate", "--postgres", &url])
        .output()
        .await
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.matches("0003_source_offsets.sql").count(),
        1,
        "{stderr}"
    );
}

#[tokio::test]
async fn mysql_migrations_are_checksummed() {
    use cryptoflow_sinks::mysql::{migrate, MIGRATIONS};
    let url = fresh_mysql_database("checksums").await;
    migrate(&url).await.expect("migrates");
    let pool = mysql_async::Pool::new(url.as_str());
    let mut conn = pool.get_conn().await.expect("connects");
    for (version, name, sql) in MIGRATIONS {
        let same: Option<i64> = conn
            .exec_first(
                "SELECT checksum = SHA2(?, 256) FROM schema_migrations WHERE version = ?",
                (sql.replace("\r\n", "\n"), *version),
            )
            .await
            .expect("recorded");
        assert_eq!(same, Some(1), "{version} {name}");
    }
    conn.query_drop("UPDATE schema_migrations SET checksum = NULL")
        .await
        .expect("clear");
    assert_eq!(migrate(&url).await.expect("migrates"), Vec::<i32>::new());
    let missing: Option<i64> = conn
        .query_first("SELECT COUNT(*) FROM schema_migrations WHERE checksum IS NULL")
        .await
        .expect("count");
    assert_eq!(missing, Some(0));
    conn.query_drop("UPDATE schema_migrations SET checksum = REPEAT('0', 64) WHERE version = 2")
        .await
        .expect("tamper");
    let err = migrate(&url).await.expect_err("changed").to_string();
    assert!(
        err.contains("sql/mysql/0002_gaps_quality.sql") && err.contains("changed"),
        "{err}"
    );
    drop(conn);
    pool.disconnect().await.expect("disconnects");
}

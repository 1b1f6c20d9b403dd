//! Checksums of applied migrations, shared by the PostgreSQL and MySQL runners.
//!
//! Each applied migration is recorded in `schema_migrations` with the SHA-256 of its SQL (line
//! ends normalized to `\n`, so a checkout with CRLF line ends reads the same). At every
//! `migrate`, an applied migration whose file now has another checksum is an error naming the
//! file: an edited migration would never run again, so the database would silently differ from
//! what the file says. A database migrated before checksums were recorded gets them recorded.

use sha2::{Digest, Sha256};

use crate::task::SinkError;

/// The SHA-256 of a migration's SQL, hex, line ends normalized to `\n`.
pub fn checksum(sql: &str) -> String {
    let digest = Sha256::digest(sql.replace("\r\n", "\n").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The file of migration `version` of `engine` (`postgres`, `mysql`), from the repository root.
pub fn file_name(engine: &str, version: i32, name: &str) -> String {
    format!("sql/{engine}/{version:04}_{name}.sql")
}

/// What to do with a migration, from what `schema_migrations` holds for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Not applied yet: apply it and record its checksum.
    Apply,
    /// Applied before checksums were recorded: record the file's checksum now.
    Record,
    /// Applied, same checksum: nothing to do.
    Same,
}

/// Compares what is recorded for a migration (`None`: no row; `Some(None)`: a row without a
/// checksum) with its SQL now. A different checksum is a permanent error naming the file.
pub fn check(
    sink: &'static str,
    engine: &str,
    (version, name, sql): (i32, &str, &str),
    recorded: Option<Option<String>>,
) -> Result<Check, SinkError> {
    let now = checksum(sql);
    match recorded {
        None => Ok(Check::Apply),
        Some(None) => Ok(Check::Record),
        Some(Some(r)) if r == now => Ok(Check::Same),
        Some(Some(r)) => Err(SinkError::Permanent {
            sink,
            message: format!(
                "migration {} (version {version}) was changed after it was applied to this \
                 database: checksum recorded {r}, file now {now}. Restore the file as it was \
                 applied and put the change in a new numbered migration",
                file_name(engine, version, name)
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_are_sha256_of_the_text_with_unix_line_ends() {
        // `printf 'SELECT 1;\n' | sha256sum` and `printf '' | sha256sum`.
        let select = "b4e0497804e46e0a0b0b8c31975b062152d551bac49c3c2e80932567b4085dcd";
        assert_eq!(checksum("SELECT 1;\n"), select);
        assert_eq!(checksum("SELECT 1;\r\n"), select);
        assert_eq!(
            checksum(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn a_changed_migration_is_an_error_naming_its_file() {
        let m = (3, "source_offsets", "SELECT 1;\n");
        let same = checksum(m.2);
        assert_eq!(
            check("postgres", "postgres", m, None).ok(),
            Some(Check::Apply)
        );
        assert_eq!(
            check("postgres", "postgres", m, Some(None)).ok(),
            Some(Check::Record)
        );
        assert_eq!(
            check("postgres", "postgres", m, Some(Some(same))).ok(),
            Some(Check::Same)
        );
        let err = check("postgres", "postgres", m, Some(Some("00ff".into())))
            .expect_err("changed")
            .to_string();
        assert!(
            err.contains("sql/postgres/0003_source_offsets.sql")
                && err.contains("00ff")
                && err.contains("b4e04978"),
            "{err}"
        );
    }
}

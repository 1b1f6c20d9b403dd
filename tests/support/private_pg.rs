//! Private database servers a test can stop and start (outages).

use std::path::PathBuf;
use std::process::Command;

pub fn pg_bin(name: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL binaries in /usr/lib/postgresql")
        .flatten()
        .map(|e| e.path())
        .collect();
    versions.sort();
    versions
        .last()
        .expect("a PostgreSQL version")
        .join("bin")
        .join(name)
}

pub fn as_postgres(args: &[&str]) -> bool {
    Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .args(args)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

pub struct PrivatePg {
    pub dir: PathBuf,
    pub port: u16,
}

impl PrivatePg {
    pub fn create() -> Self {
        let port = free_port();
        let dir = private_dir("pg", "postgres:postgres");
        let initdb = pg_bin("initdb");
        assert!(
            as_postgres(&[
                initdb.to_str().unwrap(),
                "-D",
                dir.join("data").to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres"
            ]),
            "initdb"
        );
        let pg = PrivatePg { dir, port };
        pg.start();
        pg
    }

    fn ctl(&self, action: &str) -> bool {
        let pg_ctl = pg_bin("pg_ctl");
        let data = self.dir.join("data");
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("log");
        as_postgres(&[
            pg_ctl.to_str().unwrap(),
            "-D",
            data.to_str().unwrap(),
            "-o",
            &opts,
            "-l",
            log.to_str().unwrap(),
            "-m",
            "fast",
            "-w",
            action,
        ])
    }

    pub fn start(&self) {
        assert!(self.ctl("start"), "pg_ctl start");
    }

    pub fn stop(&self) {
        assert!(self.ctl("stop"), "pg_ctl stop");
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let _ = self.ctl("stop");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TCP port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An empty directory for a private server's data, owned by the server's user.
pub fn private_dir(tag: &str, owner: &str) -> PathBuf {
    // Tests of one binary run side by side: each server gets a directory of its own.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("cf-{tag}-private-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    assert!(Command::new("chown")
        .arg(owner)
        .arg(&dir)
        .status()
        .unwrap()
        .success());
    dir
}

//! A `cryptoflow` child process whose stderr lines the test reads: to learn the address it
//! serves on and to wait for what it says.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running child and its stderr lines.
pub struct Proc {
    /// The process.
    pub child: Child,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    /// Spawns `cmd` (stdout discarded, stderr read line by line).
    pub fn spawn(cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc { child, lines }
    }

    /// Waits (at most 120 s) for a stderr line containing `needle`; the lines before it are in
    /// the panic message when none comes.
    pub fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return l,
                Ok(l) => seen.push(l),
                Err(e) => panic!("no `{needle}` on stderr ({e}):\n{}", seen.join("\n")),
            }
        }
    }

    /// The `http://host:port` it says it serves on.
    pub fn base(&self) -> String {
        let line = self.wait_for("serving on ");
        line.split("serving on ").nth(1).unwrap().trim().to_string()
    }

    /// Sends SIGTERM; it must exit 0.
    pub fn stop(mut self) {
        #[cfg(unix)]
        // SAFETY: signalling our own child by its pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let status = self.child.wait().unwrap();
        assert!(status.success(), "exit after SIGTERM: {status}");
    }
}

//! The layout of a multi-process cluster: how many processes, which one this is, and every
//! process's `host:port`, from the flags, else the environment, else the hostname.
//!
//! - processes: `--processes N`, else `CRYPTOFLOW_PROCESSES`, else 1;
//! - this process's index: `--process I`, else `CRYPTOFLOW_PROCESS`, else (only with more than one
//!   process) the trailing `-<ordinal>` of the hostname (`HOSTNAME`, else the system's), as a
//!   Kubernetes StatefulSet names its pods (`cryptoflow-2` → 2);
//! - the addresses: `--hostfile F` (one `host:port` line per process), or `--hosts LIST`, else
//!   `CRYPTOFLOW_HOSTS` (comma-separated `host:port`, one per process; a single entry holding
//!   `{i}` stands for every process, `{i}` replaced by 0..N-1), else `127.0.0.1:2101`, `:2102`, …
//!   A hostfile together with a host list is refused (which one was meant?).
//!
//! The result is checked: as many addresses as processes, the index in range, and this process's
//! own address never every interface (`0.0.0.0`, `::`): the cluster port has no authentication.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::runtime::Cluster;

/// The environment variable holding the number of processes.
pub const PROCESSES_ENV: &str = "CRYPTOFLOW_PROCESSES";
/// The environment variable holding this process's index.
pub const PROCESS_ENV: &str = "CRYPTOFLOW_PROCESS";
/// The environment variable holding the comma-separated `host:port` list.
pub const HOSTS_ENV: &str = "CRYPTOFLOW_HOSTS";
/// The environment variable holding the hostname (set in every Kubernetes pod to the pod's name).
pub const HOSTNAME_ENV: &str = "HOSTNAME";
/// The placeholder of a single host-list entry that expands to every process index.
pub const INDEX_PLACEHOLDER: &str = "{i}";
/// The first port of the default addresses (`127.0.0.1:2101`, `:2102`, …).
pub const DEFAULT_FIRST_PORT: u16 = 2101;

/// What the command line said about the layout (`None`: not given).
#[derive(Debug, Clone, Default)]
pub struct LayoutFlags {
    /// `--processes N`.
    pub processes: Option<usize>,
    /// `--process I`.
    pub process: Option<usize>,
    /// `--hosts LIST`.
    pub hosts: Option<String>,
    /// `--hostfile F`.
    pub hostfile: Option<PathBuf>,
}

/// Where a value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    Flag(&'static str),
    Env(&'static str),
    Hostname(String),
    Default,
}

impl Origin {
    fn describe(&self) -> String {
        match self {
            Origin::Flag(f) => f.to_string(),
            Origin::Env(v) => format!("the environment variable {v}"),
            Origin::Hostname(source) => format!("the hostname's ordinal ({source})"),
            Origin::Default => "the default".to_string(),
        }
    }
}

/// Resolves the layout from the flags, the process environment and the system hostname.
pub fn resolve(flags: &LayoutFlags) -> Result<Cluster> {
    resolve_with(
        flags,
        |name| match std::env::var(name) {
            Ok(v) => Some(v),
            Err(std::env::VarError::NotPresent) => None,
            Err(std::env::VarError::NotUnicode(v)) => Some(v.to_string_lossy().into_owned()),
        },
        system_hostname,
    )
}

/// [`resolve`] with the environment (`env(name)`: a variable's value, `None` when unset) and the
/// system hostname given; an empty value counts as unset.
pub fn resolve_with(
    flags: &LayoutFlags,
    env: impl Fn(&str) -> Option<String>,
    hostname: impl FnOnce() -> Result<String>,
) -> Result<Cluster> {
    let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let (processes, processes_origin) = match (flags.processes, env(PROCESSES_ENV)) {
        (Some(n), _) => (n, Origin::Flag("--processes")),
        (None, Some(v)) => (
            parse_count(&v, PROCESSES_ENV, "the number of processes")?,
            Origin::Env(PROCESSES_ENV),
        ),
        (None, None) => (1, Origin::Default),
    };
    if processes == 0 {
        bail!(
            "the number of processes from {} is 0: it must be at least 1",
            processes_origin.describe()
        );
    }
    let (process, process_origin) = match (flags.process, env(PROCESS_ENV)) {
        (Some(i), _) => (i, Origin::Flag("--process")),
        (None, Some(v)) => (
            parse_count(&v, PROCESS_ENV, "this process's 0-based index")?,
            Origin::Env(PROCESS_ENV),
        ),
        (None, None) if processes > 1 => {
            let (name, source) = match env(HOSTNAME_ENV) {
                Some(h) => {
                    let source = format!("{HOSTNAME_ENV}={:?}", h.trim());
                    (h, source)
                }
                None => {
                    let h = hostname().context(
                        "cannot read the system hostname to derive this process's index; set \
                         --process or CRYPTOFLOW_PROCESS",
                    )?;
                    let source = format!("system hostname {:?}", h.trim());
                    (h, source)
                }
            };
            let Some(i) = hostname_ordinal(&name) else {
                bail!(
                    "cannot derive this process's index from the {source}: it does not end in \
                     -<ordinal> (as StatefulSet pods do: cryptoflow-0, cryptoflow-1, …); set \
                     --process or {PROCESS_ENV}"
                );
            };
            (i, Origin::Hostname(source))
        }
        (None, None) => (0, Origin::Default),
    };
    if process >= processes {
        bail!(
            "process index {process} (from {}) is out of range for {processes} processes (from {}); \
             indexes are 0-based",
            process_origin.describe(),
            processes_origin.describe()
        );
    }

    let list = match (&flags.hosts, env(HOSTS_ENV)) {
        (Some(l), _) => Some((l.clone(), Origin::Flag("--hosts"))),
        (None, Some(v)) => Some((v, Origin::Env(HOSTS_ENV))),
        (None, None) => None,
    };
    let (hosts, hosts_origin) = match (&flags.hostfile, list) {
        (Some(f), Some((_, origin))) => bail!(
            "both --hostfile {} and a host list (from {}) are given: use one",
            f.display(),
            origin.describe()
        ),
        (Some(f), None) => (
            std::fs::read_to_string(f)
                .with_context(|| format!("cannot read hostfile {}", f.display()))?
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from)
                .collect(),
            (format!("the hostfile {}", f.display()), "line"),
        ),
        (None, Some((l, origin))) => (
            expand_hosts(&l, processes).with_context(|| {
                format!("invalid host list {:?} (from {})", l, origin.describe())
            })?,
            (
                format!("the host list (from {})", origin.describe()),
                "entry",
            ),
        ),
        (None, None) if processes > 1 => (
            (0..processes)
                .map(|i| format!("127.0.0.1:{}", usize::from(DEFAULT_FIRST_PORT) + i))
                .collect(),
            ("the default addresses".to_string(), "entry"),
        ),
        (None, None) => (Vec::new(), (String::new(), "entry")),
    };
    check_hosts(&hosts, processes, process, &hosts_origin.0, hosts_origin.1)?;
    Ok(Cluster {
        processes,
        process,
        hosts,
    })
}

/// A whole number from an environment variable, or an error naming it.
fn parse_count(value: &str, var: &str, what: &str) -> Result<usize> {
    value.trim().parse::<usize>().map_err(|e| {
        anyhow::anyhow!(
            "invalid value {value:?} of the environment variable {var} ({what}): {e}; expected a \
             whole number such as 3"
        )
    })
}

/// The trailing `-<ordinal>` of a hostname's first label: `cryptoflow-2` → 2,
/// `cryptoflow-2.cryptoflow-cluster.ns.svc.cluster.local` → 2; `None` without one.
pub fn hostname_ordinal(hostname: &str) -> Option<usize> {
    let label = hostname.trim().split('.').next()?;
    let (name, digits) = label.rsplit_once('-')?;
    if name.is_empty() || digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A comma-separated host list: one `host:port` per process, or one entry holding `{i}` that
/// expands to every process index `0..processes`.
pub fn expand_hosts(list: &str, processes: usize) -> Result<Vec<String>> {
    let entries: Vec<&str> = list.split(',').map(str::trim).collect();
    if let Some(pos) = entries.iter().position(|e| e.is_empty()) {
        bail!("entry {} is empty", pos + 1);
    }
    let hosts: Vec<String> = match entries.as_slice() {
        [one] if one.contains(INDEX_PLACEHOLDER) => (0..processes)
            .map(|i| one.replace(INDEX_PLACEHOLDER, &i.to_string()))
            .collect(),
        _ => {
            if let Some(e) = entries.iter().find(|e| e.contains(INDEX_PLACEHOLDER)) {
                bail!(
                    "{e:?} holds {INDEX_PLACEHOLDER} but is not the only entry: either one entry \
                     with {INDEX_PLACEHOLDER} for every process, or one host:port per process"
                );
            }
            entries.iter().map(|e| e.to_string()).collect()
        }
    };
    for h in &hosts {
        check_address(h)?;
    }
    Ok(hosts)
}

/// `host:port` with a non-empty host and a port number (an IPv6 host in brackets).
fn check_address(addr: &str) -> Result<()> {
    let Some((host, port)) = addr.rsplit_once(':') else {
        bail!("{addr:?} is not host:port");
    };
    if host.is_empty() || host.contains(['{', '}']) || port.parse::<u16>().is_err() {
        bail!("{addr:?} is not host:port (a host name or address, then a port number)");
    }
    Ok(())
}

/// Checks a multi-process host list. Each process listens on its own entry's address, without
/// authentication, until every peer has connected: that address must be the process's own
/// (pod) address, never every interface. `origin` names the list in errors, `unit` its entries
/// (`line`, `entry`).
pub fn check_hosts(
    hosts: &[String],
    processes: usize,
    process: usize,
    origin: &str,
    unit: &str,
) -> Result<()> {
    if processes <= 1 {
        return Ok(());
    }
    if process >= processes {
        bail!("--process {process} is out of range for --processes {processes} (0-based)");
    }
    if hosts.len() != processes {
        bail!(
            "{origin} lists {} addresses but there are {processes} processes: one host:port \
             {unit} per process",
            hosts.len()
        );
    }
    for addr in hosts[process].split_whitespace() {
        let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(addr);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host == "0.0.0.0" || host == "::" || host == "*" {
            bail!(
                "process {process} would listen on {addr:?}, every interface: the cluster port has \
                 no authentication, so list this process's own address (its pod IP or DNS name, \
                 or 127.0.0.1 on one machine) in {origin}"
            );
        }
    }
    Ok(())
}

/// The system hostname (`gethostname`).
#[cfg(unix)]
fn system_hostname() -> Result<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for `buf.len()` bytes; gethostname writes at most that many.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("gethostname");
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Ok(String::from_utf8_lossy(&buf[..end]).into_owned())
}

/// The system hostname: not read on this platform.
#[cfg(not(unix))]
fn system_hostname() -> Result<String> {
    bail!("the system hostname is not read on this platform")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn run(flags: &LayoutFlags, env: &[(&str, &str)], hostname: Option<&str>) -> Result<Cluster> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        resolve_with(
            flags,
            |k| env.get(k).cloned(),
            || {
                hostname
                    .map(String::from)
                    .context("no hostname in this test")
            },
        )
    }

    fn err(flags: &LayoutFlags, env: &[(&str, &str)], hostname: Option<&str>) -> String {
        format!("{:#}", run(flags, env, hostname).unwrap_err())
    }

    const DNS: &str = "cryptoflow-{i}.cryptoflow-cluster.cryptoflow.svc.cluster.local:2101";

    #[test]
    fn ordinals_of_statefulset_pod_names() {
        assert_eq!(hostname_ordinal("cryptoflow-0"), Some(0));
        assert_eq!(hostname_ordinal("cryptoflow-2"), Some(2));
        assert_eq!(hostname_ordinal("my-pipeline-worker-17"), Some(17));
        assert_eq!(
            hostname_ordinal("cryptoflow-2.cryptoflow-cluster.cryptoflow.svc.cluster.local"),
            Some(2)
        );
        assert_eq!(hostname_ordinal(" cryptoflow-1\n"), Some(1));
        for bad in [
            "cryptoflow",
            "cryptoflow-",
            "cryptoflow-x",
            "cryptoflow-1a",
            "-3",
            "",
            "cryptoflow-+1",
            "host.cryptoflow-1",
            "cryptoflow-99999999999999999999999",
        ] {
            assert_eq!(hostname_ordinal(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn one_entry_with_the_placeholder_expands_to_every_process() {
        assert_eq!(
            expand_hosts(DNS, 3).unwrap(),
            [
                "cryptoflow-0.cryptoflow-cluster.cryptoflow.svc.cluster.local:2101",
                "cryptoflow-1.cryptoflow-cluster.cryptoflow.svc.cluster.local:2101",
                "cryptoflow-2.cryptoflow-cluster.cryptoflow.svc.cluster.local:2101",
            ]
        );
        // Several placeholders in the one entry (a port per process on one machine).
        assert_eq!(
            expand_hosts("10.0.0.{i}:210{i}", 2).unwrap(),
            ["10.0.0.0:2100", "10.0.0.1:2101"]
        );
        assert_eq!(
            expand_hosts(" 127.0.0.1:5000 , 127.0.0.1:5001,[::1]:5002", 3).unwrap(),
            ["127.0.0.1:5000", "127.0.0.1:5001", "[::1]:5002"]
        );
    }

    #[test]
    fn bad_host_lists_say_what_is_wrong() {
        let e = format!("{:#}", expand_hosts("a-{i}:1,b:2", 2).unwrap_err());
        assert!(e.contains("not the only entry"), "{e}");
        let e = format!("{:#}", expand_hosts("a:1,,b:2", 2).unwrap_err());
        assert!(e.contains("entry 2 is empty"), "{e}");
        for bad in ["a", "a:", ":80", "a:http", "a:70000", "a:{i}x"] {
            let e = format!("{:#}", expand_hosts(bad, 1).unwrap_err());
            assert!(e.contains("not host:port"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_statefulset_pod_takes_everything_from_the_environment() {
        let c = run(
            &LayoutFlags::default(),
            &[
                ("CRYPTOFLOW_PROCESSES", "3"),
                ("CRYPTOFLOW_HOSTS", DNS),
                ("HOSTNAME", "cryptoflow-2"),
            ],
            None,
        )
        .unwrap();
        assert_eq!((c.processes, c.process), (3, 2));
        assert_eq!(
            c.hosts[2],
            "cryptoflow-2.cryptoflow-cluster.cryptoflow.svc.cluster.local:2101"
        );
        // Without HOSTNAME, the system hostname.
        let c = run(
            &LayoutFlags::default(),
            &[("CRYPTOFLOW_PROCESSES", "3"), ("CRYPTOFLOW_HOSTS", DNS)],
            Some("cryptoflow-1"),
        )
        .unwrap();
        assert_eq!(c.process, 1);
    }

    #[test]
    fn flags_win_over_the_environment_and_the_environment_over_the_hostname() {
        let env = [
            ("CRYPTOFLOW_PROCESSES", "3"),
            ("CRYPTOFLOW_PROCESS", "1"),
            ("CRYPTOFLOW_HOSTS", "127.0.0.1:700{i}"),
            ("HOSTNAME", "cryptoflow-2"),
        ];
        let c = run(&LayoutFlags::default(), &env, None).unwrap();
        assert_eq!((c.processes, c.process), (3, 1));
        assert_eq!(
            c.hosts,
            ["127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002"]
        );
        let flags = LayoutFlags {
            processes: Some(2),
            process: Some(0),
            hosts: Some("127.0.0.1:8000,127.0.0.1:8001".into()),
            hostfile: None,
        };
        let c = run(&flags, &env, None).unwrap();
        assert_eq!((c.processes, c.process), (2, 0));
        assert_eq!(c.hosts, ["127.0.0.1:8000", "127.0.0.1:8001"]);
        // An empty variable counts as unset (the hostname decides).
        let c = run(
            &LayoutFlags::default(),
            &[("CRYPTOFLOW_PROCESSES", "3"), ("CRYPTOFLOW_PROCESS", " ")],
            Some("cryptoflow-2"),
        )
        .unwrap();
        assert_eq!(c.process, 2);
        assert_eq!(
            c.hosts,
            ["127.0.0.1:2101", "127.0.0.1:2102", "127.0.0.1:2103"]
        );
    }

    #[test]
    fn one_process_needs_nothing() {
        let c = run(&LayoutFlags::default(), &[], None).unwrap();
        assert_eq!((c.processes, c.process, c.hosts.len()), (1, 0, 0));
        // The hostname is not read for one process.
        let c = run(&LayoutFlags::default(), &[("HOSTNAME", "laptop")], None).unwrap();
        assert_eq!(c.process, 0);
    }

    #[test]
    fn bad_values_name_their_variable() {
        let none = LayoutFlags::default();
        let e = err(&none, &[("CRYPTOFLOW_PROCESSES", "three")], None);
        assert!(
            e.contains("CRYPTOFLOW_PROCESSES") && e.contains("\"three\""),
            "{e}"
        );
        let e = err(&none, &[("CRYPTOFLOW_PROCESSES", "0")], None);
        assert!(
            e.contains("CRYPTOFLOW_PROCESSES") && e.contains("at least 1"),
            "{e}"
        );
        let e = err(
            &none,
            &[("CRYPTOFLOW_PROCESSES", "3"), ("CRYPTOFLOW_PROCESS", "-1")],
            None,
        );
        assert!(
            e.contains("CRYPTOFLOW_PROCESS ") && e.contains("\"-1\""),
            "{e}"
        );
        let e = err(
            &none,
            &[("CRYPTOFLOW_PROCESSES", "3"), ("CRYPTOFLOW_PROCESS", "3")],
            None,
        );
        assert!(
            e.contains("index 3 (from the environment variable CRYPTOFLOW_PROCESS)")
                && e.contains("3 processes (from the environment variable CRYPTOFLOW_PROCESSES)"),
            "{e}"
        );
        let e = err(
            &none,
            &[
                ("CRYPTOFLOW_PROCESSES", "2"),
                ("CRYPTOFLOW_PROCESS", "0"),
                ("CRYPTOFLOW_HOSTS", "a:1,b:2,c:3"),
            ],
            None,
        );
        assert!(
            e.contains("from the environment variable CRYPTOFLOW_HOSTS")
                && e.contains("lists 3 addresses but there are 2 processes"),
            "{e}"
        );
        let e = err(
            &none,
            &[
                ("CRYPTOFLOW_PROCESSES", "2"),
                ("CRYPTOFLOW_PROCESS", "0"),
                ("CRYPTOFLOW_HOSTS", "a:1,b"),
            ],
            None,
        );
        assert!(
            e.contains("CRYPTOFLOW_HOSTS") && e.contains("\"b\" is not host:port"),
            "{e}"
        );
    }

    #[test]
    fn a_hostname_without_an_ordinal_is_an_error() {
        let e = err(
            &LayoutFlags::default(),
            &[("CRYPTOFLOW_PROCESSES", "3"), ("HOSTNAME", "laptop")],
            None,
        );
        assert!(
            e.contains("HOSTNAME=\"laptop\"")
                && e.contains("-<ordinal>")
                && e.contains("CRYPTOFLOW_PROCESS"),
            "{e}"
        );
        let e = err(
            &LayoutFlags::default(),
            &[("CRYPTOFLOW_PROCESSES", "3")],
            Some("buildbox"),
        );
        assert!(e.contains("system hostname \"buildbox\""), "{e}");
        // An ordinal past the cluster names where it came from.
        let e = err(
            &LayoutFlags::default(),
            &[("CRYPTOFLOW_PROCESSES", "3"), ("HOSTNAME", "cryptoflow-3")],
            None,
        );
        assert!(e.contains("index 3 (from the hostname's ordinal"), "{e}");
    }

    #[test]
    fn a_hostfile_and_a_host_list_conflict() {
        let dir = std::env::temp_dir().join(format!("cf-layout-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("hosts");
        std::fs::write(&file, "# cluster\n127.0.0.1:6000\n\n127.0.0.1:6001\n").unwrap();
        let flags = LayoutFlags {
            processes: Some(2),
            process: Some(1),
            hosts: None,
            hostfile: Some(file.clone()),
        };
        let c = run(&flags, &[], None).unwrap();
        assert_eq!(c.hosts, ["127.0.0.1:6000", "127.0.0.1:6001"]);
        let e = err(&flags, &[("CRYPTOFLOW_HOSTS", "127.0.0.1:{i}")], None);
        assert!(
            e.contains("--hostfile") && e.contains("CRYPTOFLOW_HOSTS") && e.contains("use one"),
            "{e}"
        );
        let both = LayoutFlags {
            hosts: Some("127.0.0.1:1,127.0.0.1:2".into()),
            ..flags
        };
        let e = err(&both, &[], None);
        assert!(e.contains("--hostfile") && e.contains("--hosts"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn this_process_never_listens_on_every_interface() {
        let e = err(
            &LayoutFlags {
                processes: Some(2),
                process: Some(1),
                hosts: Some("127.0.0.1:1,0.0.0.0:2".into()),
                hostfile: None,
            },
            &[],
            None,
        );
        assert!(
            e.contains("every interface") && e.contains("--hosts"),
            "{e}"
        );
    }
}

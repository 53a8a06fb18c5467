//! Which processes count, and under which label: `LOADTEST_COST_PROCESSES`'
//! syntax (described in `cost/mod.rs`) and the matching of a process
//! against it.

use anyhow::{Context, Result, anyhow, bail};

/// The stack's processes: PostgreSQL (the server and every backend),
/// both services, NATS, the copy's database (FerretDB or mongod), the
/// cluster's load balancer, the supervisor (process-compose reads every
/// line the others log), and the load test.
pub const DEFAULT_PROCESSES: &str = "postgres=comm:postgres;\
user-service=exe:user-service;\
nats-server=exe:nats-server;\
notification-service=exe:notification-service;\
ferretdb=exe:ferretdb;\
mongod=exe:mongod;\
haproxy=exe:haproxy;\
process-compose=exe:process-compose;\
loadtest=self";

/// The kernel keeps this many bytes of a process's name in `comm`.
const COMM_LEN: usize = 15;

/// One way to recognise a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matcher {
    Comm(String),
    Exe(String),
    Cmd(String),
    Pid(u32),
    Myself,
}

/// A label and the processes it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watch {
    pub label: String,
    pub matchers: Vec<Matcher>,
}

impl Watch {
    /// Whether this is the load test's own label.
    pub(super) fn is_loadtest(&self) -> bool {
        self.matchers.contains(&Matcher::Myself)
    }
}

/// What is known of a process when it is classified.
#[derive(Debug, Clone, Copy)]
pub(super) struct Process<'a> {
    pub pid: u32,
    pub comm: &'a str,
    /// The command line's words, NUL-separated as in `/proc/<pid>/cmdline`.
    pub cmdline: &'a str,
}

impl Matcher {
    fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        if text == "self" {
            return Ok(Matcher::Myself);
        }
        let (kind, value) = text
            .split_once(':')
            .ok_or_else(|| anyhow!("{text:?}: expected comm:, exe:, cmd:, pid: or self"))?;
        if value.is_empty() {
            bail!("{text:?}: nothing to match");
        }
        Ok(match kind {
            "comm" => Matcher::Comm(value.to_owned()),
            "exe" => Matcher::Exe(value.to_owned()),
            "cmd" => Matcher::Cmd(value.to_owned()),
            "pid" => Matcher::Pid(
                value
                    .parse()
                    .with_context(|| format!("{text:?}: not a process id"))?,
            ),
            _ => bail!("{text:?}: expected comm:, exe:, cmd:, pid: or self"),
        })
    }

    fn matches(&self, process: &Process<'_>) -> bool {
        let mut words = process.cmdline.split('\0').filter(|w| !w.is_empty());
        match self {
            Matcher::Comm(name) => process.comm == truncate(name, COMM_LEN),
            Matcher::Exe(name) => words
                .next()
                .is_some_and(|first| first.rsplit('/').next() == Some(name.as_str())),
            Matcher::Cmd(text) => words.collect::<Vec<_>>().join(" ").contains(text.as_str()),
            Matcher::Pid(pid) => process.pid == *pid,
            Matcher::Myself => process.pid == std::process::id(),
        }
    }
}

/// The first `len` bytes of `s`, cut at a character boundary.
fn truncate(s: &str, len: usize) -> &str {
    let mut end = s.len().min(len);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Reads `LOADTEST_COST_PROCESSES`' syntax (see the module doc).
///
/// # Errors
/// When an entry has no label, no `=`, or a matcher that does not parse, or
/// a label comes twice.
pub fn parse_processes(spec: &str) -> Result<Vec<Watch>> {
    let mut watches: Vec<Watch> = Vec::new();
    for entry in spec.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let (label, matchers) = entry
            .split_once('=')
            .ok_or_else(|| anyhow!("{entry:?}: expected label=matcher"))?;
        let label = label.trim();
        if label.is_empty() {
            bail!("{entry:?}: the label is empty");
        }
        if watches.iter().any(|w| w.label == label) {
            bail!("{label:?} is given twice");
        }
        let matchers = matchers
            .split('|')
            .map(Matcher::parse)
            .collect::<Result<Vec<_>>>()
            .with_context(|| format!("in {label:?}"))?;
        watches.push(Watch {
            label: label.to_owned(),
            matchers,
        });
    }
    if watches.is_empty() {
        bail!("no label=matcher entry");
    }
    Ok(watches)
}

/// The label a process counts for: the first that matches it.
pub(super) fn classify(watches: &[Watch], process: &Process<'_>) -> Option<usize> {
    watches
        .iter()
        .position(|w| w.matchers.iter().any(|m| m.matches(process)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_list_parses_and_bad_entries_are_named() {
        let watches = parse_processes(DEFAULT_PROCESSES).expect("the default parses");
        let labels: Vec<&str> = watches.iter().map(|w| w.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "postgres",
                "user-service",
                "nats-server",
                "notification-service",
                "ferretdb",
                "mongod",
                "haproxy",
                "process-compose",
                "loadtest"
            ]
        );
        let watches = parse_processes(" db = comm:postgres | pid:12 ; me=self;").expect("spaces");
        assert_eq!(
            watches[0].matchers,
            [Matcher::Comm("postgres".into()), Matcher::Pid(12)]
        );
        assert!(watches[1].is_loadtest());
        for (spec, why) in [
            ("", "nothing"),
            ("postgres", "no ="),
            ("=comm:postgres", "no label"),
            ("db=postgres", "no kind"),
            ("db=size:3", "an unknown kind"),
            ("db=pid:twelve", "a pid that is not a number"),
            ("db=exe:", "an empty name"),
            ("db=self;db=self", "a label twice"),
        ] {
            assert!(parse_processes(spec).is_err(), "{why}: {spec:?}");
        }
    }

    #[test]
    fn processes_are_matched_by_name_program_command_line_or_pid() {
        let watches = parse_processes(
            "pg=comm:postgres;us=exe:user-service;ns=exe:notification-service;nats=cmd:-js -sd;one=pid:77",
        )
        .expect("parses");
        let process = |pid, comm, cmdline| Process { pid, comm, cmdline };
        let cases = [
            (
                process(
                    10,
                    "postgres",
                    "postgres: postgres users_db 127.0.0.1(5432) idle",
                ),
                Some(0),
                "a backend, whose command line is its title",
            ),
            (
                process(11, "user-service", "./target/release/user-service\0"),
                Some(1),
                "the program's file name",
            ),
            (
                process(
                    12,
                    "notification-se",
                    "/srv/bin/notification-service\0--flag\0",
                ),
                Some(2),
                "a name longer than comm keeps",
            ),
            (
                process(13, "bash", "bash\0-c\0./target/release/user-service\0"),
                None,
                "a wrapper is not the program",
            ),
            (
                process(
                    14,
                    "nats-server",
                    "nats-server\0-a\0localhost\0-js\0-sd\0/d\0",
                ),
                Some(3),
                "words of the command line",
            ),
            (process(77, "sleep", "sleep\0ten\0"), Some(4), "a pid"),
            (process(78, "kworker/0:1", ""), None, "a kernel thread"),
        ];
        for (process, label, why) in cases {
            assert_eq!(classify(&watches, &process), label, "{why}");
        }
        let long = parse_processes("ns=comm:notification-service").expect("parses");
        assert_eq!(
            classify(&long, &process(5, "notification-se", "")),
            Some(0),
            "comm: compares the 15 bytes the kernel keeps"
        );
        let me = parse_processes("me=self").expect("parses");
        assert_eq!(
            classify(&me, &process(std::process::id(), "loadtest", "")),
            Some(0)
        );
    }
}

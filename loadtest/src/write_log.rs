//! The write log (`LOADTEST_WRITE_LOG`): one JSON line per write attempt with
//! what the client knows of its fate, for checks that need every write, not
//! just the final state (`scripts/chaos` reads it).
//!
//! `status` is `ok` (2xx: acknowledged, with the state user-service
//! returned), `rejected` (4xx: refused, changed nothing), `refused` (no
//! connection: never sent) or `unknown` (sent, but no answer, or a 5xx: it
//! may or may not have committed).

use std::{
    fs::File,
    io::{BufWriter, Write as _},
    path::Path,
    sync::Mutex,
};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::propagation::Written;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fate {
    Ok,
    Rejected,
    Refused,
    Unknown,
}

impl Fate {
    /// What a response status says of a write.
    pub fn of_status(status: u16) -> Self {
        match status {
            200..=299 => Fate::Ok,
            400..=499 => Fate::Rejected,
            _ => Fate::Unknown,
        }
    }

    /// What a transport error says of a write: a failed connect never sent it.
    pub fn of_error(error: &reqwest::Error) -> Self {
        if error.is_connect() {
            Fate::Refused
        } else {
            Fate::Unknown
        }
    }
}

/// One attempted write.
#[derive(Debug, Serialize)]
pub struct Attempt<'a> {
    /// `create` or `update`.
    pub op: &'a str,
    /// The user updated, or the id a create was given (when acknowledged).
    pub id: Option<i64>,
    pub name: &'a str,
    pub email: &'a str,
    pub status: Fate,
    /// The state user-service acknowledged.
    pub acknowledged: Option<&'a Written>,
    /// Seconds since the log was opened, when the answer (or error) came.
    pub at_s: f64,
}

pub struct WriteLog {
    out: Mutex<BufWriter<File>>,
    opened: std::time::Instant,
}

impl WriteLog {
    /// # Errors
    /// When the file cannot be created.
    pub fn create(path: &Path) -> Result<Self> {
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self {
            out: Mutex::new(BufWriter::new(file)),
            opened: std::time::Instant::now(),
        })
    }

    pub fn elapsed_s(&self) -> f64 {
        self.opened.elapsed().as_secs_f64()
    }

    pub fn record(&self, attempt: &Attempt<'_>) {
        let mut out = self
            .out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // A log line lost to a full disk shows up as a missing write in the
        // check, never as a silent pass.
        if serde_json::to_writer(&mut *out, attempt).is_ok() {
            let _ = out.write_all(b"\n");
        }
    }

    /// # Errors
    /// When the file cannot be written.
    pub fn flush(&self) -> Result<()> {
        self.out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .flush()
            .context("writing the write log")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_say_what_a_write_may_have_done() {
        assert_eq!(Fate::of_status(201), Fate::Ok);
        assert_eq!(Fate::of_status(200), Fate::Ok);
        assert_eq!(Fate::of_status(409), Fate::Rejected);
        assert_eq!(Fate::of_status(422), Fate::Rejected);
        // A 5xx may come after the commit (e.g. the connection dropped during it).
        assert_eq!(Fate::of_status(503), Fate::Unknown);
        assert_eq!(Fate::of_status(500), Fate::Unknown);
    }

    #[test]
    fn a_line_per_attempt_in_the_documented_shape() {
        let dir = std::env::temp_dir().join(format!("write-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("writes.jsonl");
        let log = WriteLog::create(&path).unwrap();
        let written = Written {
            id: 7,
            name: "A".into(),
            email: "a@example.com".into(),
            updated_at: "2025-05-25T10:00:00Z".parse().unwrap(),
        };
        log.record(&Attempt {
            op: "update",
            id: Some(7),
            name: "A",
            email: "a@example.com",
            status: Fate::Ok,
            acknowledged: Some(&written),
            at_s: 1.5,
        });
        log.record(&Attempt {
            op: "create",
            id: None,
            name: "B",
            email: "b@example.com",
            status: Fate::Unknown,
            acknowledged: None,
            at_s: 2.0,
        });
        log.flush().unwrap();
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["status"], "ok");
        assert_eq!(
            lines[0]["acknowledged"]["updated_at"],
            "2025-05-25T10:00:00Z"
        );
        assert_eq!(lines[1]["status"], "unknown");
        assert_eq!(lines[1]["id"], serde_json::Value::Null);
    }
}

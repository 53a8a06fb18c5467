//! What a write costs each process of the stack: CPU time (user + system,
//! from `/proc/<pid>/stat`) of every process matching a label, over the
//! measured window, divided by the writes acknowledged in it.
//!
//! The processes are named by `LOADTEST_COST_PROCESSES`, a `;`-separated list
//! of `label=matcher|matcher…`, a matcher being one of:
//! - `comm:NAME`: the kernel's name of the process (`/proc/<pid>/comm`, which
//!   keeps the first 15 bytes of a name) is NAME (so truncated);
//! - `exe:NAME`: the file name of the command's first word is NAME (a
//!   wrapper such as `bash -c …` does not match);
//! - `cmd:TEXT`: the command line, its words joined by spaces, contains TEXT;
//! - `pid:N`: that process;
//! - `self`: the load test itself.
//!
//! A process counts for the first label it matches; every matching process
//! on the machine counts, including one of another stack beside this one.
//! The processes are sampled once a second, so one that starts during the
//! window counts from its start, and one that exits counts until its last
//! sample (up to a second of its CPU is lost). The totals are over the
//! window only: work a write causes after it (a sync backlog still draining)
//! is not counted, so measure at a rate the stack keeps up with.
//!
//! Beside the table, the window's share of the machine's CPU time that was
//! idle, waiting for I/O, or stolen by the hypervisor (`/proc/stat`): on a
//! shared virtual machine the stolen share varies by the minute, and every
//! latency figure with it.

mod processes;
mod procfs;
mod report;

use std::{
    collections::{HashMap, HashSet},
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

pub use self::{
    processes::{DEFAULT_PROCESSES, Watch, parse_processes},
    report::{MachineCpu, Report},
};
use self::{
    processes::{Process, classify},
    procfs::{CpuTimes, clock_ticks_per_s, parse_cpu_times, parse_stat},
};

/// How often the processes are sampled.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// A process seen in the window.
#[derive(Debug, Clone, Copy)]
struct Seen {
    label: usize,
    /// CPU ticks when the window began (0 for a process started in it).
    first: u64,
    /// CPU ticks at the last sample.
    last: u64,
}

/// The samples so far: per matching process (pid and start time, so that a
/// reused pid is another process), and the pids that matched no label.
#[derive(Debug, Default)]
struct Samples {
    seen: HashMap<(u32, u64), Seen>,
    unmatched: HashSet<u32>,
}

impl Samples {
    /// One pass over `/proc`. `initial`: the window begins now, so the CPU
    /// each process has used so far is not counted.
    fn sample(&mut self, proc: &Path, watches: &[Watch], initial: bool) {
        let Ok(entries) = std::fs::read_dir(proc) else {
            return;
        };
        let mut alive = HashSet::new();
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            alive.insert(pid);
            if self.unmatched.contains(&pid) {
                continue;
            }
            let dir = entry.path();
            let Ok(stat) = std::fs::read_to_string(dir.join("stat"))
                .map_err(anyhow::Error::from)
                .and_then(|line| parse_stat(&line))
            else {
                // Gone between the listing and the read.
                continue;
            };
            let key = (pid, stat.start_ticks);
            if let Some(seen) = self.seen.get_mut(&key) {
                seen.last = stat.cpu_ticks;
                continue;
            }
            let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline);
            let process = Process {
                pid,
                comm: &stat.comm,
                cmdline: &cmdline,
            };
            match classify(watches, &process) {
                Some(label) => {
                    self.seen.insert(
                        key,
                        Seen {
                            label,
                            first: if initial { stat.cpu_ticks } else { 0 },
                            last: stat.cpu_ticks,
                        },
                    );
                }
                None => {
                    self.unmatched.insert(pid);
                }
            }
        }
        // A pid that is gone may come back as another process.
        self.unmatched.retain(|pid| alive.contains(pid));
    }
}

/// Samples the processes in a thread of its own until stopped.
pub struct Meter {
    watches: Arc<Vec<Watch>>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Samples>,
    started: Instant,
    machine: Option<CpuTimes>,
}

/// The machine's CPU times now; None where `/proc/stat` cannot be read.
fn machine_cpu_times() -> Option<CpuTimes> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    parse_cpu_times(&text).ok()
}

impl Meter {
    /// Takes the first sample (the window begins) and keeps sampling.
    pub fn start(watches: &[Watch]) -> Self {
        let watches = Arc::new(watches.to_vec());
        let stop = Arc::new(AtomicBool::new(false));
        let mut samples = Samples::default();
        let proc = Path::new("/proc");
        samples.sample(proc, &watches, true);
        let machine = machine_cpu_times();
        let started = Instant::now();
        let thread = {
            let (watches, stop) = (Arc::clone(&watches), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::park_timeout(SAMPLE_INTERVAL);
                    samples.sample(proc, &watches, false);
                }
                samples
            })
        };
        Self {
            watches,
            stop,
            thread,
            started,
            machine,
        }
    }

    /// Ends the window with a last sample; the cost of each of `writes`.
    pub fn stop(self, writes: u64) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.thread().unpark();
        let window = self.started.elapsed();
        let machine = self
            .machine
            .zip(machine_cpu_times())
            .and_then(|(before, after)| MachineCpu::between(&before, &after));
        // The thread only reads /proc; if it panicked, there is nothing to report.
        let Ok(samples) = self.thread.join() else {
            return Report::default();
        };
        let per_label = cpu_ticks_by_label(&samples, self.watches.len());
        Report {
            machine_cpu: machine,
            ..Report::new(
                &self.watches,
                &per_label,
                clock_ticks_per_s(),
                writes,
                window,
            )
        }
    }
}

/// CPU ticks used in the window and processes seen, per label.
fn cpu_ticks_by_label(samples: &Samples, labels: usize) -> Vec<(u64, usize)> {
    let mut per_label = vec![(0_u64, 0_usize); labels];
    for seen in samples.seen.values() {
        let (ticks, processes) = &mut per_label[seen.label];
        *ticks += seen.last.saturating_sub(seen.first);
        *processes += 1;
    }
    per_label
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_counts_the_cpu_since_its_start_and_all_of_a_process_started_in_it() {
        let mut samples = Samples::default();
        let seen = |label, first, last| Seen { label, first, last };
        samples.seen.insert((1, 1), seen(0, 1_000, 1_300)); // there at the start
        samples.seen.insert((2, 5), seen(0, 0, 40)); // started during the window
        samples.seen.insert((3, 1), seen(1, 500, 520)); // exited: its last sample
        assert_eq!(cpu_ticks_by_label(&samples, 3), [(340, 2), (20, 1), (0, 0)]);
    }

    #[test]
    fn the_meter_counts_the_load_test_itself() {
        let watches = parse_processes("lt=self").expect("parses");
        let meter = Meter::start(&watches);
        // Burn a little CPU so there is something to count.
        let started = Instant::now();
        let mut x = 0_u64;
        while started.elapsed() < Duration::from_millis(300) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let report = meter.stop(10);
        assert_eq!(report.cost_processes.0, [("lt".to_owned(), 1)]);
        let machine = report.machine_cpu.expect("/proc/stat is read");
        assert!(
            machine.idle_share + machine.steal_share <= 1.0,
            "{machine:?}"
        );
        let cpu = report.cost_cpu_s.0[0].1;
        assert!(cpu > 0.0 && cpu < 5.0, "{cpu}");
    }
}

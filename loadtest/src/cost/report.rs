//! The cost table: CPU seconds and milliseconds per write by label, and
//! their sums, as `summary.json` and the terminal show them.

use std::time::Duration;

use serde::{Serialize, Serializer, ser::SerializeMap};

use super::{processes::Watch, procfs::CpuTimes};

/// How the machine's CPU time was spent in the window, as shares of it (all
/// CPUs together).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct MachineCpu {
    pub idle_share: f64,
    pub iowait_share: f64,
    /// Stolen by the hypervisor: the CPUs had work but did not run it.
    pub steal_share: f64,
}

impl MachineCpu {
    /// The shares between two readings; None when no time passed.
    #[allow(clippy::cast_precision_loss)]
    pub fn between(before: &CpuTimes, after: &CpuTimes) -> Option<Self> {
        let total = after.total.checked_sub(before.total).filter(|&t| t > 0)? as f64;
        let share = |a: u64, b: u64| a.saturating_sub(b) as f64 / total;
        Some(Self {
            idle_share: share(after.idle, before.idle),
            iowait_share: share(after.iowait, before.iowait),
            steal_share: share(after.steal, before.steal),
        })
    }
}

/// A map that keeps the labels' order (the order they were given in).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ByLabel<T>(pub Vec<(String, T)>);

impl<T: Serialize> Serialize for ByLabel<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (label, value) in &self.0 {
            map.serialize_entry(label, value)?;
        }
        map.end()
    }
}

/// The cost table, flattened into `summary.json` (and into each capacity
/// step). Labels that matched no process are listed apart.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// CPU milliseconds per acknowledged write, by label.
    pub cost_per_write_ms: ByLabel<f64>,
    /// CPU seconds in the window, by label.
    pub cost_cpu_s: ByLabel<f64>,
    /// Processes counted, by label.
    pub cost_processes: ByLabel<usize>,
    /// The sum of `cost_per_write_ms`.
    pub cost_total_ms: Option<f64>,
    /// The same without the load test's own label (`self`).
    pub cost_total_without_loadtest_ms: Option<f64>,
    /// Writes acknowledged in the window, and its length.
    pub cost_writes: Option<u64>,
    pub cost_window_s: Option<f64>,
    /// Labels no process matched.
    pub cost_not_found: Vec<String>,
    /// The machine's CPU time in the window; null where `/proc/stat` could
    /// not be read.
    pub machine_cpu: Option<MachineCpu>,
}

impl Report {
    /// The table from `per_label` (CPU ticks and processes, in `watches`'
    /// order) for `writes` writes over `window`.
    #[allow(clippy::cast_precision_loss)]
    pub(super) fn new(
        watches: &[Watch],
        per_label: &[(u64, usize)],
        ticks_per_s: u64,
        writes: u64,
        window: Duration,
    ) -> Self {
        let mut report = Report {
            cost_writes: Some(writes),
            cost_window_s: Some(window.as_secs_f64()),
            ..Report::default()
        };
        let (mut total, mut without_loadtest) = (0.0, 0.0);
        for (watch, &(ticks, processes)) in watches.iter().zip(per_label) {
            if processes == 0 {
                report.cost_not_found.push(watch.label.clone());
                continue;
            }
            let cpu_s = ticks as f64 / ticks_per_s.max(1) as f64;
            report.cost_cpu_s.0.push((watch.label.clone(), cpu_s));
            report
                .cost_processes
                .0
                .push((watch.label.clone(), processes));
            if writes > 0 {
                let ms = cpu_s * 1e3 / writes as f64;
                report.cost_per_write_ms.0.push((watch.label.clone(), ms));
                total += ms;
                if !watch.is_loadtest() {
                    without_loadtest += ms;
                }
            }
        }
        if writes > 0 {
            report.cost_total_ms = Some(total);
            report.cost_total_without_loadtest_ms = Some(without_loadtest);
        }
        report
    }

    /// Two lines for the terminal summary (none when nothing was measured).
    pub fn to_terminal(&self) -> String {
        let Some(writes) = self.cost_writes else {
            return String::new();
        };
        let cells: Vec<String> = self
            .cost_per_write_ms
            .0
            .iter()
            .map(|(label, ms)| format!("{label} {ms:.3}"))
            .collect();
        let mut out = format!(
            "CPU per write     {} (ms)\n",
            if cells.is_empty() {
                "no write acknowledged".to_owned()
            } else {
                cells.join("  ")
            }
        );
        if let (Some(total), Some(without)) =
            (self.cost_total_ms, self.cost_total_without_loadtest_ms)
        {
            let not_found = if self.cost_not_found.is_empty() {
                String::new()
            } else {
                format!("; not found: {}", self.cost_not_found.join(", "))
            };
            out.push_str(&format!(
                "                  total {total:.3} ms, without the load test {without:.3} ms ({writes} writes in {:.1} s{not_found})\n",
                self.cost_window_s.unwrap_or_default()
            ));
        }
        if let Some(m) = self.machine_cpu {
            out.push_str(&format!(
                "machine CPU       idle {:.0}%, waiting for I/O {:.0}%, stolen by the hypervisor {:.0}%\n",
                m.idle_share * 100.0,
                m.iowait_share * 100.0,
                m.steal_share * 100.0
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machine_shares_are_of_the_time_between_two_readings() {
        let at = |idle, iowait, steal, total| CpuTimes {
            idle,
            iowait,
            steal,
            total,
        };
        let shares =
            MachineCpu::between(&at(100, 10, 5, 400), &at(150, 20, 30, 600)).expect("time passed");
        assert_eq!(
            shares,
            MachineCpu {
                idle_share: 0.25,
                iowait_share: 0.05,
                steal_share: 0.125
            }
        );
        assert_eq!(MachineCpu::between(&at(1, 1, 1, 9), &at(1, 1, 1, 9)), None);
    }
    use crate::cost::processes::parse_processes;

    #[test]
    fn the_table_divides_cpu_time_by_writes_and_sums_with_and_without_the_load_test() {
        let watches = parse_processes("pg=comm:postgres;us=exe:user-service;gone=exe:x;lt=self")
            .expect("parses");
        // 100 ticks per second: pg 250 ticks = 2.5 s, us 1.0 s, lt 0.5 s.
        let per_label = [(250, 3), (100, 1), (0, 0), (50, 1)];
        let report = Report::new(&watches, &per_label, 100, 1_000, Duration::from_secs(10));
        let ms: Vec<(&str, f64)> = report
            .cost_per_write_ms
            .0
            .iter()
            .map(|(l, v)| (l.as_str(), *v))
            .collect();
        assert_eq!(ms, [("pg", 2.5), ("us", 1.0), ("lt", 0.5)]);
        assert_eq!(report.cost_cpu_s.0[0], ("pg".to_owned(), 2.5));
        assert_eq!(report.cost_processes.0[0], ("pg".to_owned(), 3));
        assert_eq!(report.cost_total_ms, Some(4.0));
        assert_eq!(report.cost_total_without_loadtest_ms, Some(3.5));
        assert_eq!(report.cost_not_found, ["gone"]);
        let json = serde_json::to_value(&report).expect("serialises");
        assert_eq!(json["cost_per_write_ms"]["pg"], 2.5);
        assert_eq!(json["cost_total_ms"], 4.0);
        let keys: Vec<&String> = json["cost_per_write_ms"]
            .as_object()
            .expect("an object")
            .keys()
            .collect();
        assert_eq!(keys.len(), 3);
        assert!(
            report
                .to_terminal()
                .contains("without the load test 3.500 ms")
        );

        let none = Report::new(&watches, &per_label, 100, 0, Duration::from_secs(10));
        assert!(none.cost_per_write_ms.0.is_empty(), "no write, no ratio");
        assert_eq!(none.cost_total_ms, None);
    }
}

//! What the run produced: `summary.json`, a latency plot (SVG, opens
//! offline in any browser) and the terminal summary.

use std::fmt::Write as _;

use serde::Serialize;

use crate::{
    baseline::{self, SyncState},
    consistency::Consistency,
    cost,
    propagation::Sample,
    service_metrics::SyncLatencyMs,
};

#[derive(Debug, Clone, Serialize)]
pub struct HttpMs {
    pub p50: f64,
    pub p99: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PropagationMs {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// notification-service's own `sync_latency_seconds` over the run (source
/// commit to the copy's write; the observer's `propagation_ms` is from the
/// acknowledgement to the copy's answer).
#[derive(Debug, Clone, Serialize)]
pub struct ServiceSync {
    #[serde(flatten)]
    pub ms: SyncLatencyMs,
    /// Its first stage, `sync_delivery_seconds`: commit to the event's
    /// arrival at notification-service (null from a service without it).
    pub delivery_ms: Option<SyncLatencyMs>,
    /// `sync_write_seconds`: each batch command's time in MongoDB; `events`
    /// counts commands, each writing one event or more.
    pub write_command_ms: Option<SyncLatencyMs>,
    /// The raw-SQL baseline ran before the last read of the metrics (right
    /// after the load), so its writes are among the events.
    pub includes_baseline_writes: bool,
}

/// The copy checked again after a baseline run once it had converged
/// (`LOADTEST_BASELINE_WHEN=after-settle`): the baseline's writes are
/// relayed and synced like the load's.
#[derive(Debug, Clone, Serialize)]
pub struct BaselineSync {
    /// Seconds from the baseline's last write to the first check that found
    /// the copy equal to the source; null if none did within the settle.
    pub converged_after_s: Option<f64>,
    /// The same users as `consistency` (above `checked_after_id`): the
    /// load's and the baseline's.
    pub consistency: Consistency,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub writes: u64,
    pub write_rps: f64,
    /// Client-seen write latency (the wait for the pacer or goose's throttle
    /// excluded).
    pub http_ms: HttpMs,
    /// `http_ms.p50`, beside `raw_sql_write_p50_ms`.
    pub write_p50_ms: f64,
    pub propagation_ms: PropagationMs,
    /// Null when an instance's `/metrics` could not be read.
    pub service_sync_latency_ms: Option<ServiceSync>,
    pub propagation_timeouts: u64,
    /// Writes not watched (over the watch budget): the propagation figures
    /// are those of the others; the consistency check covers all.
    pub unwatched_writes: u64,
    /// Reads of the copy the observer sent (its polls): load on
    /// notification-service and MongoDB, so counted in their CPU per write.
    pub observer_reads: u64,
    /// Whether notification-service synced during the run
    /// (`LOADTEST_SYNC`): `stopped` watches and checks nothing.
    pub sync: SyncState,
    /// Seconds from the end of the last write (the load's, or the
    /// baseline's when it ran right after the load) to the first check that
    /// found the copy equal to the source; null if it never did within the
    /// settle.
    pub converged_after_s: Option<f64>,
    /// After a baseline run once the copy converged: the check again, its
    /// writes included. Null otherwise.
    pub baseline_sync: Option<BaselineSync>,
    /// Null when not checked (the sync stopped).
    pub consistency: Option<Consistency>,
    /// The check covered the users with an id above this: the largest id
    /// before the load (0: every user), so every user the run created or
    /// updated, and not the ones earlier runs left.
    pub checked_after_id: i64,
    /// service write rate / raw SQL rate of the same writes; null when the
    /// baseline was skipped.
    pub write_efficiency: Option<f64>,
    /// How the baseline ran (when, connections, mix).
    pub write_efficiency_conditions: Option<baseline::Conditions>,
    pub raw_sql_rps: Option<f64>,
    /// Client-seen latency of a raw-SQL write (BEGIN to COMMIT).
    pub raw_sql_write_p50_ms: Option<f64>,
    pub users: usize,
    /// The request rate limit, if any: `LOADTEST_RATE`'s pacer, or goose's
    /// `--throttle-requests` when given. Then `write_rps` is the load
    /// offered, not the service's limit.
    pub rate_limit: Option<u64>,
    pub duration_s: f64,
    /// CPU time per write, by process (over the load).
    #[serde(flatten)]
    pub cost: cost::Report,
}

impl Summary {
    pub fn to_terminal(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "\n=== user-sync load test ===");
        let limit = self.rate_limit.map_or_else(String::new, |r| {
            format!(", rate-limited to {r} requests/s; LOADTEST_RATE=0 lifts the limit")
        });
        let _ = writeln!(
            out,
            "writes            {} in {:.1} s = {:.0}/s ({} goose users{limit})",
            self.writes, self.duration_s, self.write_rps, self.users
        );
        let _ = writeln!(
            out,
            "write latency     p50 {:.2} ms  p99 {:.2} ms (the service's answer; the pacer's or goose's throttle wait excluded)",
            self.http_ms.p50, self.http_ms.p99
        );
        if self.sync == SyncState::Stopped {
            let _ = writeln!(
                out,
                "propagation       not measured: notification-service stopped for the run (LOADTEST_SYNC=stopped)"
            );
        } else {
            self.propagation_to_terminal(&mut out);
        }
        self.baseline_to_terminal(&mut out);
        match &self.consistency {
            Some(c) => {
                let verdict = verdict(c);
                let after = self
                    .converged_after_s
                    .map_or_else(String::new, |s| format!(" ({s:.1} s after the last write)"));
                let scope = match self.checked_after_id {
                    0 => String::new(),
                    id => format!(" (the users above id {id}: this run's)"),
                };
                let _ = writeln!(
                    out,
                    "consistency       {verdict}: checked {} missing {} stale {} extra {}{scope}{after}",
                    c.checked, c.missing, c.stale, c.extra
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "consistency       not checked: start notification-service again and it applies this run's events from its durable consumer"
                );
            }
        }
        if let Some(b) = &self.baseline_sync {
            let c = &b.consistency;
            let verdict = verdict(c);
            let after = b.converged_after_s.map_or_else(String::new, |s| {
                format!(" ({s:.1} s after the baseline's last write)")
            });
            let _ = writeln!(
                out,
                "  and again      {verdict} with the baseline's writes: checked {} missing {} stale {} extra {}{after}",
                c.checked, c.missing, c.stale, c.extra
            );
        }
        out.push_str(&self.cost.to_terminal());
        out
    }

    /// The observer's and the service's sync latencies.
    fn propagation_to_terminal(&self, out: &mut String) {
        let p = &self.propagation_ms;
        let _ = writeln!(
            out,
            "propagation       p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms  timeouts {}",
            p.p50, p.p90, p.p99, p.p999, p.max, self.propagation_timeouts
        );
        if self.unwatched_writes > 0 {
            let _ = writeln!(
                out,
                "                  measured on {} of {} writes (LOADTEST_WATCH_RATE, LOADTEST_POLL_RATE)",
                self.writes.saturating_sub(self.unwatched_writes),
                self.writes
            );
        }
        let _ = writeln!(
            out,
            "                  the observer read the copy {} times to measure it",
            self.observer_reads
        );
        if let Some(sync) = &self.service_sync_latency_ms {
            let m = &sync.ms;
            let _ = writeln!(
                out,
                "service sync      mean {:.2} ms  p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  over {} events ({} instance(s); notification-service's sync_latency_seconds, commit to copy{})",
                m.mean,
                m.p50,
                m.p90,
                m.p99,
                m.events,
                m.instances,
                if sync.includes_baseline_writes {
                    ", the baseline's writes included"
                } else {
                    ""
                }
            );
            if let (Some(d), Some(w)) = (&sync.delivery_ms, &sync.write_command_ms) {
                let _ = writeln!(
                    out,
                    "  of which       delivery (commit to arrival) mean {:.2} ms  p50 {:.2} ms  p99 {:.2} ms; each MongoDB write command mean {:.2} ms  p50 {:.2} ms  p99 {:.2} ms over {} commands",
                    d.mean, d.p50, d.p99, w.mean, w.p50, w.p99, w.events
                );
            }
        }
    }

    /// The raw SQL baseline and `write_efficiency`.
    fn baseline_to_terminal(&self, out: &mut String) {
        match (self.raw_sql_rps, self.write_efficiency) {
            (Some(raw), Some(efficiency)) => {
                let p50 = self
                    .raw_sql_write_p50_ms
                    .map_or_else(String::new, |ms| format!(", write p50 {ms:.2} ms"));
                let when = self.write_efficiency_conditions.as_ref().map_or("", |c| {
                    match (c.when, c.sync) {
                        (_, SyncState::Stopped) => {
                            " (right after the load; notification-service stopped for both)"
                        }
                        (baseline::When::AfterLoad, SyncState::Running) => {
                            " (right after the load)"
                        }
                        (baseline::When::AfterSettle, SyncState::Running) => " (after the settle)",
                    }
                });
                let _ = writeln!(
                    out,
                    "raw SQL baseline  {raw:.0}/s{p50}{when}   write_efficiency {efficiency:.3}"
                );
            }
            _ => {
                let _ = writeln!(out, "raw SQL baseline  skipped");
            }
        }
    }
}

/// A consistency check's verdict, as the terminal summary prints it.
fn verdict(c: &Consistency) -> &'static str {
    if c.in_sync() {
        "CONSISTENT"
    } else {
        "INCONSISTENT"
    }
}

/// Quantile of a sorted slice (nearest rank).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Per-second series: writes acknowledged, and propagation p50/p90/p99 of
/// the writes acknowledged in that second.
pub struct Series {
    pub writes_per_s: Vec<f64>,
    pub p50: Vec<f64>,
    pub p90: Vec<f64>,
    pub p99: Vec<f64>,
}

#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)]
pub fn series(write_times: &[f64], samples: &[Sample]) -> Series {
    let seconds = write_times.iter().copied().fold(0.0_f64, f64::max).floor() as usize + 1;
    let mut writes_per_s = vec![0.0; seconds];
    for t in write_times {
        writes_per_s[(*t as usize).min(seconds - 1)] += 1.0;
    }
    let mut buckets: Vec<Vec<f64>> = vec![Vec::new(); seconds];
    for s in samples {
        buckets[(s.at_s as usize).min(seconds - 1)].push(s.latency_ms);
    }
    let (mut p50, mut p90, mut p99) = (Vec::new(), Vec::new(), Vec::new());
    for bucket in &mut buckets {
        bucket.sort_by(f64::total_cmp);
        p50.push(quantile(bucket, 0.5));
        p90.push(quantile(bucket, 0.9));
        p99.push(quantile(bucket, 0.99));
    }
    Series {
        writes_per_s,
        p50,
        p90,
        p99,
    }
}

/// A panel's label, top edge, and lines (name, colour, values).
type Panel<'a> = (&'a str, f64, Vec<(&'a str, &'a str, &'a Vec<f64>)>);

/// Two panels, time on x: propagation percentiles (ms) and writes per second.
#[allow(clippy::cast_precision_loss)]
pub fn svg(series: &Series, title: &str) -> String {
    const W: f64 = 960.0;
    const PANEL: f64 = 220.0;
    const LEFT: f64 = 70.0;
    const RIGHT: f64 = 20.0;
    let n = series.writes_per_s.len().max(2);
    let x = |i: usize| LEFT + (W - LEFT - RIGHT) * i as f64 / (n - 1) as f64;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="560" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/><text x="{LEFT}" y="22" font-size="16">{title}</text>"#
    );
    let panels: [Panel<'_>; 2] = [
        (
            "propagation latency (ms), by second of the write",
            40.0,
            vec![
                ("p50", "#1f77b4", &series.p50),
                ("p90", "#ff7f0e", &series.p90),
                ("p99", "#d62728", &series.p99),
            ],
        ),
        (
            "writes acknowledged per second",
            310.0,
            vec![("writes/s", "#2ca02c", &series.writes_per_s)],
        ),
    ];
    for (label, top, lines) in panels {
        let max = lines
            .iter()
            .flat_map(|(_, _, v)| v.iter().copied())
            .fold(0.0_f64, f64::max)
            .max(1e-9);
        let y = |v: f64| top + 20.0 + PANEL * (1.0 - v / max);
        let _ = write!(
            out,
            r##"<text x="{LEFT}" y="{}">{label}</text><line x1="{LEFT}" y1="{}" x2="{LEFT}" y2="{}" stroke="#333"/><line x1="{LEFT}" y1="{}" x2="{}" y2="{}" stroke="#333"/><text x="{}" y="{}" text-anchor="end">{max:.1}</text><text x="{}" y="{}" text-anchor="end">0</text><text x="{}" y="{}" text-anchor="end">{} s</text>"##,
            top + 12.0,
            top + 20.0,
            top + 20.0 + PANEL,
            top + 20.0 + PANEL,
            W - RIGHT,
            top + 20.0 + PANEL,
            LEFT - 6.0,
            top + 24.0,
            LEFT - 6.0,
            top + 20.0 + PANEL,
            W - RIGHT,
            top + 36.0 + PANEL,
            n - 1
        );
        for (k, (name, color, values)) in lines.iter().enumerate() {
            let points: Vec<String> = values
                .iter()
                .enumerate()
                .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
                .collect();
            let _ = write!(
                out,
                r#"<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{}"/><text x="{}" y="{}" fill="{color}">{name}</text>"#,
                points.join(" "),
                W - RIGHT - 200.0 + 60.0 * k as f64,
                top + 12.0
            );
        }
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_bucket_writes_and_latencies_by_second() {
        let times = [0.1, 0.5, 1.2, 2.9];
        let samples = [
            Sample {
                at_s: 0.1,
                latency_ms: 1.0,
            },
            Sample {
                at_s: 0.5,
                latency_ms: 3.0,
            },
            Sample {
                at_s: 2.9,
                latency_ms: 7.0,
            },
        ];
        let s = series(&times, &samples);
        assert_eq!(s.writes_per_s, [2.0, 1.0, 1.0]);
        assert_eq!(s.p50, [1.0, 0.0, 7.0]);
        assert_eq!(s.p99, [3.0, 0.0, 7.0]);
    }

    fn summary() -> Summary {
        let mut cost = cost::Report::default();
        cost.cost_per_write_ms.0.push(("postgres".into(), 0.5));
        cost.cost_total_ms = Some(0.5);
        cost.cost_total_without_loadtest_ms = Some(0.5);
        cost.cost_writes = Some(1_000);
        Summary {
            writes: 1_000,
            write_rps: 100.0,
            http_ms: HttpMs {
                p50: 5.0,
                p99: 20.0,
            },
            write_p50_ms: 5.0,
            propagation_ms: PropagationMs {
                p50: 10.0,
                p90: 12.0,
                p99: 14.0,
                p999: 20.0,
                max: 30.0,
            },
            service_sync_latency_ms: Some(ServiceSync {
                ms: SyncLatencyMs {
                    mean: 4.5,
                    p50: 4.0,
                    p90: 6.0,
                    p99: 9.0,
                    events: 1_000,
                    instances: 2,
                },
                delivery_ms: Some(SyncLatencyMs {
                    mean: 2.0,
                    p50: 1.5,
                    p90: 3.0,
                    p99: 5.0,
                    events: 1_000,
                    instances: 2,
                }),
                write_command_ms: Some(SyncLatencyMs {
                    mean: 1.8,
                    p50: 1.6,
                    p90: 2.5,
                    p99: 4.0,
                    events: 700,
                    instances: 2,
                }),
                includes_baseline_writes: true,
            }),
            propagation_timeouts: 0,
            unwatched_writes: 0,
            observer_reads: 0,
            sync: SyncState::Running,
            converged_after_s: Some(0.5),
            baseline_sync: None,
            consistency: Some(Consistency::default()),
            checked_after_id: 0,
            write_efficiency: Some(0.3),
            write_efficiency_conditions: None,
            raw_sql_rps: Some(333.0),
            raw_sql_write_p50_ms: Some(2.0),
            users: 8,
            rate_limit: None,
            duration_s: 10.0,
            cost,
        }
    }

    #[test]
    fn the_summary_has_the_documented_keys() {
        let json = serde_json::to_value(summary()).unwrap();
        for key in [
            "write_p50_ms",
            "raw_sql_write_p50_ms",
            "write_efficiency",
            "write_efficiency_conditions",
            "service_sync_latency_ms",
            "cost_per_write_ms",
            "cost_total_ms",
            "cost_total_without_loadtest_ms",
            "converged_after_s",
        ] {
            assert!(json.get(key).is_some(), "{key}");
        }
        assert_eq!(json["service_sync_latency_ms"]["p99"], 9.0);
        assert_eq!(json["service_sync_latency_ms"]["delivery_ms"]["p50"], 1.5);
        assert_eq!(
            json["service_sync_latency_ms"]["write_command_ms"]["events"],
            700
        );
        assert_eq!(
            json["service_sync_latency_ms"]["includes_baseline_writes"],
            true
        );
        assert_eq!(json["cost_per_write_ms"]["postgres"], 0.5);
        let text = summary().to_terminal();
        assert!(
            text.contains("service sync      mean 4.50 ms  p50 4.00 ms"),
            "{text}"
        );
        assert!(text.contains("write p50 2.00 ms"), "{text}");
        assert!(
            text.contains("delivery (commit to arrival) mean 2.00 ms  p50 1.50 ms"),
            "{text}"
        );
        assert!(text.contains("CPU per write     postgres 0.500"), "{text}");
        assert!(!text.contains("and again"), "{text}");
    }

    #[test]
    fn a_baseline_after_the_settle_is_checked_again_and_says_so() {
        let mut s = summary();
        s.baseline_sync = Some(BaselineSync {
            converged_after_s: Some(12.25),
            consistency: Consistency {
                checked: 5_000,
                ..Consistency::default()
            },
        });
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["baseline_sync"]["converged_after_s"], 12.25);
        assert_eq!(json["baseline_sync"]["consistency"]["checked"], 5_000);
        let text = s.to_terminal();
        assert!(
            text.contains("and again      CONSISTENT with the baseline's writes: checked 5000 missing 0 stale 0 extra 0 (12.2 s after the baseline's last write)"),
            "{text}"
        );
        s.baseline_sync = Some(BaselineSync {
            converged_after_s: None,
            consistency: Consistency {
                checked: 5_000,
                missing: 3,
                ..Consistency::default()
            },
        });
        let text = s.to_terminal();
        assert!(
            text.contains("and again      INCONSISTENT with the baseline's writes: checked 5000 missing 3 stale 0 extra 0\n"),
            "{text}"
        );
    }

    #[test]
    fn a_run_with_the_sync_stopped_says_what_it_did_not_measure() {
        let mut stopped = summary();
        stopped.sync = SyncState::Stopped;
        stopped.consistency = None;
        stopped.service_sync_latency_ms = None;
        stopped.converged_after_s = None;
        let json = serde_json::to_value(&stopped).unwrap();
        assert_eq!(json["sync"], "stopped");
        assert!(json["consistency"].is_null(), "{json}");
        let text = stopped.to_terminal();
        assert!(text.contains("propagation       not measured"), "{text}");
        assert!(text.contains("consistency       not checked"), "{text}");
        assert!(!text.contains("CONSISTENT"), "{text}");
        assert!(text.contains("write_efficiency 0.300"), "{text}");
        let running = summary().to_terminal();
        assert!(
            running.contains("consistency       CONSISTENT"),
            "{running}"
        );
        assert!(running.contains("propagation       p50"), "{running}");
    }

    #[test]
    fn the_plot_is_an_svg_with_one_line_per_series() {
        let s = series(
            &[0.0, 1.0, 2.0],
            &[Sample {
                at_s: 0.0,
                latency_ms: 2.0,
            }],
        );
        let svg = svg(&s, "test");
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 4);
    }
}

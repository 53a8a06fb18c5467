//! What the capacity search produced: `summary.json`'s steps table, the
//! terminal table, `capacity.svg` (offered rate against achieved rate and
//! propagation p99, per step) and `capacity.html` (the table and the plot).

use std::fmt::Write as _;

use serde::Serialize;

use super::{schedule::StepKind, verdict::Criteria};
use crate::{cost, report::ServiceSync};

/// One step, as `capacity_steps` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// 1, 2, … in the order they ran.
    pub step: usize,
    pub kind: StepKind,
    pub offered_write_rps: f64,
    pub achieved_write_rps: f64,
    /// The requests per second the step's pacer offered (reads included).
    pub requests_per_s: usize,
    pub writes: u64,
    /// From the first paced request to the last answer.
    pub duration_s: f64,
    pub propagation_p50_ms: f64,
    pub propagation_p99_ms: f64,
    pub propagation_max_ms: f64,
    /// Writes watched for arrival; the others were over the watch budget.
    pub watched: u64,
    /// Reads of the copy the observer sent to measure them: load on
    /// notification-service and MongoDB, so in their CPU per write.
    pub observer_reads: u64,
    pub timeouts: u64,
    /// Seconds from the step's end to the check that found the copy equal
    /// to the source; null when none begun within the budget did.
    pub converged_after_s: Option<f64>,
    pub held: bool,
    /// Why it did not hold (reasons joined by "; "); null when it held.
    pub why_not: Option<String>,
    /// Client-seen write latency p50 (the pacer's wait excluded).
    pub write_p50_ms: f64,
    /// notification-service's own `sync_latency_seconds` over the step, and
    /// its stages.
    pub service_sync_latency_ms: Option<ServiceSync>,
    #[serde(flatten)]
    pub cost: cost::Report,
}

/// The bounds a step had to meet, and how the steps ran.
#[derive(Debug, Clone, Serialize)]
pub struct Conditions {
    pub p99_ms: f64,
    pub converge_s: f64,
    pub min_achieved: f64,
    pub propagation_timeout_s: f64,
    pub start_write_rps: f64,
    pub factor: f64,
    /// Tries after a failed step's first, at the same rate.
    pub retries: usize,
    pub step_s: f64,
    pub settle_s: f64,
    pub users: usize,
    pub create_weight: usize,
    pub update_weight: usize,
    pub read_weight: usize,
    /// The consistency checks covered the users above this id: the largest
    /// before the first step (0: every user), so every user the run wrote.
    pub checked_after_id: i64,
}

/// `summary.json` in capacity mode.
#[derive(Debug, Clone, Serialize)]
pub struct CapacitySummary {
    /// `"capacity"`.
    pub mode: &'static str,
    /// The write rate (creates + updates per second) achieved in the highest
    /// step that held; null when none did.
    pub sustainable_write_rps: Option<f64>,
    /// The write rate that step offered.
    pub sustainable_offered_write_rps: Option<f64>,
    /// Why the search ended.
    pub ended: String,
    pub conditions: Conditions,
    pub capacity_steps: Vec<Step>,
    /// The cost table of the sustainable step (empty when none held).
    #[serde(flatten)]
    pub cost: cost::Report,
}

impl CapacitySummary {
    pub fn to_terminal(&self) -> String {
        let c = &self.conditions;
        let mut out = String::new();
        let _ = writeln!(out, "\n=== user-sync capacity ===");
        let _ = writeln!(
            out,
            "a step holds when: propagation p99 <= {:.0} ms, no watched write timed out ({:.0} s), copy equal to the source within {:.0} s, achieved >= {:.0}% of offered",
            c.p99_ms,
            c.propagation_timeout_s,
            c.converge_s,
            c.min_achieved * 100.0
        );
        let _ = writeln!(
            out,
            "{} goose users, steps of {:.0} s from {:.0} writes/s x {}, a failed step tried {} more time(s), mix {} create : {} update : {} read",
            c.users,
            c.step_s,
            c.start_write_rps,
            c.factor,
            c.retries,
            c.create_weight,
            c.update_weight,
            c.read_weight
        );
        let _ = writeln!(
            out,
            "{:>4} {:<6} {:>9} {:>10} {:>8} {:>8} {:>8} {:>7} {:>8} {:>9} {:>11} {:>6} {:>4}",
            "step",
            "kind",
            "offered/s",
            "achieved/s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "watched",
            "timeouts",
            "converged",
            "stack CPU/w",
            "stolen",
            "held"
        );
        for s in &self.capacity_steps {
            let Cells {
                converged,
                cpu,
                stolen,
            } = s.cells();
            let _ = writeln!(
                out,
                "{:>4} {:<6} {:>9.1} {:>10.1} {:>8.2} {:>8.2} {:>8.2} {:>7} {:>8} {:>9} {:>11} {:>6} {:>4}",
                s.step,
                kind_name(s.kind),
                s.offered_write_rps,
                s.achieved_write_rps,
                s.propagation_p50_ms,
                s.propagation_p99_ms,
                s.propagation_max_ms,
                s.watched,
                s.timeouts,
                converged,
                cpu,
                stolen,
                if s.held { "yes" } else { "NO" }
            );
        }
        for s in self.capacity_steps.iter().filter(|s| !s.held) {
            let _ = writeln!(
                out,
                "step {} ({:.0} writes/s) did not hold: {}",
                s.step,
                s.offered_write_rps,
                s.why_not.as_deref().unwrap_or("?")
            );
        }
        match (
            self.sustainable_write_rps,
            self.sustainable_offered_write_rps,
        ) {
            (Some(achieved), Some(offered)) => {
                let _ = writeln!(
                    out,
                    "sustainable_write_rps {achieved:.0} (offered {offered:.0} writes/s); {}",
                    self.ended
                );
            }
            _ => {
                let _ = writeln!(out, "sustainable_write_rps none: {}", self.ended);
            }
        }
        out.push_str(&self.cost.to_terminal());
        out
    }
}

/// A step's derived cells, as both tables show them.
struct Cells {
    converged: String,
    cpu: String,
    stolen: String,
}

impl Step {
    fn cells(&self) -> Cells {
        Cells {
            converged: self
                .converged_after_s
                .map_or_else(|| "no".to_owned(), |t| format!("{t:.1} s")),
            cpu: self
                .cost
                .cost_total_without_loadtest_ms
                .map_or_else(|| "-".to_owned(), |ms| format!("{ms:.3}")),
            stolen: self.cost.machine_cpu.map_or_else(
                || "-".to_owned(),
                |m| format!("{:.0}%", m.steal_share * 100.0),
            ),
        }
    }
}

fn kind_name(kind: StepKind) -> &'static str {
    match kind {
        StepKind::Ramp => "ramp",
        StepKind::Bisect => "bisect",
        StepKind::Retry => "retry",
    }
}

/// Text safe inside SVG or HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const HELD: &str = "#2ca02c";
const FAILED: &str = "#d62728";

/// Two panels, offered write rate on x: achieved write rate (with the line
/// achieved = offered), and propagation p99 on a log scale (with the bound).
/// Each step is a dot, green when it held, red when not, numbered.
#[allow(clippy::cast_precision_loss, clippy::too_many_lines)]
pub fn svg(steps: &[Step], criteria: &Criteria, title: &str) -> String {
    const W: f64 = 960.0;
    const PANEL: f64 = 220.0;
    const LEFT: f64 = 70.0;
    const RIGHT: f64 = 20.0;
    let x_max = steps
        .iter()
        .map(|s| s.offered_write_rps.max(s.achieved_write_rps))
        .fold(1.0_f64, f64::max)
        * 1.05;
    let x = |v: f64| LEFT + (W - LEFT - RIGHT) * v / x_max;
    let mut by_rate: Vec<&Step> = steps.iter().collect();
    by_rate.sort_by(|a, b| a.offered_write_rps.total_cmp(&b.offered_write_rps));
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="600" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/><text x="{LEFT}" y="22" font-size="16">{}</text>"#,
        escape(title)
    );
    // Panel 1: achieved against offered, linear.
    let top = 40.0;
    let bottom = top + 20.0 + PANEL;
    let y1 = |v: f64| bottom - PANEL * v / x_max;
    axes(
        &mut out,
        top,
        "achieved writes/s against offered writes/s (dashed: achieved = offered)",
        &format!("{x_max:.0}"),
        "0",
    );
    let _ = write!(
        out,
        r##"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#999" stroke-dasharray="4 4"/>"##,
        x(0.0),
        y1(0.0),
        x(x_max),
        y1(x_max)
    );
    let points: Vec<(f64, f64, &Step)> = by_rate
        .iter()
        .map(|s| (x(s.offered_write_rps), y1(s.achieved_write_rps), *s))
        .collect();
    dots(&mut out, "#1f77b4", &points);
    // Panel 2: p99 against offered, log scale from 1 ms.
    let top = 330.0;
    let bottom = top + 20.0 + PANEL;
    let highest = steps
        .iter()
        .map(|s| s.propagation_p99_ms)
        .fold(criteria.max_p99_ms, f64::max)
        .max(10.0);
    let decades = highest.log10().ceil().max(1.0);
    let y2 = |v: f64| bottom - PANEL * v.max(1.0).log10() / decades;
    axes(
        &mut out,
        top,
        "propagation p99 (ms, log scale) against offered writes/s (dashed: the bound)",
        &format!("{:.0}", 10_f64.powf(decades)),
        "1",
    );
    let _ = write!(
        out,
        r##"<line x1="{LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="{FAILED}" stroke-dasharray="4 4"/><text x="{}" y="{:.1}" fill="{FAILED}" text-anchor="end">{:.0} ms</text>"##,
        W - RIGHT,
        W - RIGHT,
        y2(criteria.max_p99_ms) - 4.0,
        criteria.max_p99_ms,
        y = y2(criteria.max_p99_ms),
    );
    let points: Vec<(f64, f64, &Step)> = by_rate
        .iter()
        .map(|s| (x(s.offered_write_rps), y2(s.propagation_p99_ms), *s))
        .collect();
    dots(&mut out, "#ff7f0e", &points);
    let _ = write!(
        out,
        r#"<text x="{}" y="590" text-anchor="end">offered writes/s (0 to {x_max:.0}); green: held, red: did not</text>"#,
        W - RIGHT
    );
    out.push_str("</svg>\n");
    out
}

/// A panel's label and axes, with the y axis's top and bottom values.
fn axes(out: &mut String, top: f64, label: &str, y_top: &str, y_bottom: &str) {
    const W: f64 = 960.0;
    const PANEL: f64 = 220.0;
    const LEFT: f64 = 70.0;
    const RIGHT: f64 = 20.0;
    let bottom = top + 20.0 + PANEL;
    let _ = write!(
        out,
        r##"<text x="{LEFT}" y="{}">{}</text><line x1="{LEFT}" y1="{}" x2="{LEFT}" y2="{bottom}" stroke="#333"/><line x1="{LEFT}" y1="{bottom}" x2="{}" y2="{bottom}" stroke="#333"/><text x="{}" y="{}" text-anchor="end">{y_top}</text><text x="{}" y="{bottom}" text-anchor="end">{y_bottom}</text>"##,
        top + 12.0,
        escape(label),
        top + 20.0,
        W - RIGHT,
        LEFT - 6.0,
        top + 24.0,
        LEFT - 6.0,
    );
}

/// A line through the steps (by offered rate) and a numbered dot per step.
fn dots(out: &mut String, color: &str, points: &[(f64, f64, &Step)]) {
    let line: Vec<String> = points
        .iter()
        .map(|(x, y, _)| format!("{x:.1},{y:.1}"))
        .collect();
    let _ = write!(
        out,
        r#"<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{}"/>"#,
        line.join(" ")
    );
    for (x, y, step) in points {
        let fill = if step.held { HELD } else { FAILED };
        let _ = write!(
            out,
            r#"<circle class="step" cx="{x:.1}" cy="{y:.1}" r="4" fill="{fill}"><title>step {}: offered {:.1}/s, achieved {:.1}/s, p99 {:.1} ms</title></circle><text x="{:.1}" y="{:.1}" font-size="10">{}</text>"#,
            step.step,
            step.offered_write_rps,
            step.achieved_write_rps,
            step.propagation_p99_ms,
            x + 5.0,
            y - 5.0,
            step.step
        );
    }
}

/// `capacity.html`: the verdict, the table and the plot, in one file.
pub fn html(summary: &CapacitySummary, svg: &str) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>user-sync capacity</title>\
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}\
td.l,th.l{{text-align:left}}tr.no{{background:#fdd}}</style></head><body>\n<h1>user-sync capacity</h1>\n"
    );
    let verdict = match (
        summary.sustainable_write_rps,
        summary.sustainable_offered_write_rps,
    ) {
        (Some(achieved), Some(offered)) => {
            format!("<b>sustainable_write_rps {achieved:.0}</b> (offered {offered:.0} writes/s)")
        }
        _ => "<b>no step held</b>".to_owned(),
    };
    let _ = writeln!(out, "<p>{verdict}; {}.</p>", escape(&summary.ended));
    let c = &summary.conditions;
    let _ = writeln!(
        out,
        "<p>A step holds when propagation p99 &le; {:.0} ms, no watched write timed out ({:.0} s), the copy equals the source within {:.0} s of the step's end, and the achieved write rate is at least {:.0}% of the offered one. {} goose users, steps of {:.0} s, mix {} create : {} update : {} read.</p>",
        c.p99_ms,
        c.propagation_timeout_s,
        c.converge_s,
        c.min_achieved * 100.0,
        c.users,
        c.step_s,
        c.create_weight,
        c.update_weight,
        c.read_weight
    );
    out.push_str(
        "<table><tr><th>step</th><th class=\"l\">kind</th><th>offered/s</th><th>achieved/s</th><th>p50 ms</th><th>p99 ms</th><th>max ms</th><th>watched</th><th>timeouts</th><th>converged after</th><th>stack CPU ms/write (load test excluded)</th><th>CPU stolen by the hypervisor</th><th class=\"l\">held</th></tr>\n",
    );
    for s in &summary.capacity_steps {
        let Cells {
            converged,
            cpu,
            stolen,
        } = s.cells();
        let held = if s.held {
            "yes".to_owned()
        } else {
            format!("no: {}", escape(s.why_not.as_deref().unwrap_or("?")))
        };
        let _ = writeln!(
            out,
            "<tr{}><td>{}</td><td class=\"l\">{}</td><td>{:.1}</td><td>{:.1}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{}</td><td>{}</td><td>{converged}</td><td>{cpu}</td><td>{stolen}</td><td class=\"l\">{held}</td></tr>",
            if s.held { "" } else { " class=\"no\"" },
            s.step,
            kind_name(s.kind),
            s.offered_write_rps,
            s.achieved_write_rps,
            s.propagation_p50_ms,
            s.propagation_p99_ms,
            s.propagation_max_ms,
            s.watched,
            s.timeouts,
        );
    }
    out.push_str("</table>\n");
    out.push_str(svg);
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CRITERIA: Criteria = crate::capacity::verdict::TEST_CRITERIA;

    fn step(n: usize, kind: StepKind, offered: f64, p99: f64, held: bool) -> Step {
        Step {
            step: n,
            kind,
            offered_write_rps: offered,
            achieved_write_rps: offered * 0.99,
            requests_per_s: offered.round() as usize,
            writes: 3_000,
            duration_s: 31.0,
            propagation_p50_ms: 10.0,
            propagation_p99_ms: p99,
            propagation_max_ms: p99 * 2.0,
            watched: 1_500,
            observer_reads: 3_000,
            timeouts: 0,
            converged_after_s: held.then_some(0.4),
            held,
            why_not: (!held).then(|| format!("propagation p99 {p99:.0} ms > 1000 ms")),
            write_p50_ms: 5.0,
            service_sync_latency_ms: None,
            cost: cost::Report::default(),
        }
    }

    fn summary() -> CapacitySummary {
        CapacitySummary {
            mode: "capacity",
            sustainable_write_rps: Some(154.7),
            sustainable_offered_write_rps: Some(156.25),
            ended: "bisected once after the first failing step".into(),
            conditions: Conditions {
                p99_ms: 1000.0,
                converge_s: 5.0,
                min_achieved: 0.9,
                propagation_timeout_s: 30.0,
                start_write_rps: 100.0,
                factor: 1.25,
                retries: 2,
                step_s: 30.0,
                settle_s: 5.0,
                users: 8,
                create_weight: 1,
                update_weight: 3,
                read_weight: 0,
                checked_after_id: 0,
            },
            capacity_steps: vec![
                step(1, StepKind::Ramp, 100.0, 20.0, true),
                step(2, StepKind::Ramp, 125.0, 40.0, true),
                step(3, StepKind::Ramp, 156.25, 400.0, true),
                step(4, StepKind::Ramp, 195.3125, 4_000.0, false),
                step(5, StepKind::Bisect, 175.78, 1_500.0, false),
            ],
            cost: cost::Report::default(),
        }
    }

    #[test]
    fn the_json_has_the_sustainable_rate_and_a_row_per_step() {
        let json = serde_json::to_value(summary()).expect("serialises");
        assert_eq!(json["sustainable_write_rps"], 154.7, "the achieved rate");
        assert_eq!(json["sustainable_offered_write_rps"], 156.25);
        let steps = json["capacity_steps"].as_array().expect("an array");
        assert_eq!(steps.len(), 5);
        for key in [
            "offered_write_rps",
            "achieved_write_rps",
            "propagation_p50_ms",
            "propagation_p99_ms",
            "propagation_max_ms",
            "watched",
            "timeouts",
            "converged_after_s",
            "held",
            "why_not",
            "cost_per_write_ms",
        ] {
            assert!(steps[0].get(key).is_some(), "{key}");
        }
        assert_eq!(steps[3]["converged_after_s"], serde_json::Value::Null);
        assert_eq!(steps[4]["kind"], "bisect");
        assert_eq!(steps[3]["held"], false);
    }

    #[test]
    fn the_terminal_table_has_a_line_per_step_and_says_why_steps_failed() {
        let text = summary().to_terminal();
        assert!(text.contains("sustainable_write_rps 155 (offered 156 writes/s)"));
        assert_eq!(text.matches(" ramp ").count(), 4, "{text}");
        assert_eq!(text.matches(" bisect ").count(), 1, "{text}");
        assert!(text.contains("step 4 (195 writes/s) did not hold: propagation p99 4000 ms"));
        let mut none = summary();
        none.sustainable_write_rps = None;
        none.sustainable_offered_write_rps = None;
        assert!(none.to_terminal().contains("sustainable_write_rps none"));
    }

    #[test]
    fn the_plot_has_a_dot_per_step_in_each_panel_coloured_by_verdict() {
        let s = summary();
        let svg = svg(&s.capacity_steps, &CRITERIA, "capacity <test>");
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(
            svg.matches(r#"class="step""#).count(),
            10,
            "5 steps x 2 panels"
        );
        assert_eq!(svg.matches(HELD).count(), 6, "3 held steps x 2 panels");
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(
            svg.contains("capacity &lt;test&gt;"),
            "the title is escaped"
        );
        assert!(svg.contains("step 5: offered 175.8/s"));
    }

    #[test]
    fn the_page_holds_the_table_and_the_plot() {
        let s = summary();
        let plot = svg(&s.capacity_steps, &CRITERIA, "t");
        let page = html(&s, &plot);
        assert_eq!(page.matches("<tr").count(), 6, "a header and 5 steps");
        assert!(page.contains("sustainable_write_rps 155"));
        assert!(page.contains("no: propagation p99 4000 ms &gt; 1000 ms"));
        assert!(page.contains("<svg"));
    }
}

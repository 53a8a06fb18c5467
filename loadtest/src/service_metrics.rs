//! notification-service's own view of the sync: its `sync_latency_seconds`
//! histogram (source commit to MongoDB write) and the two stages it splits
//! into, `sync_delivery_seconds` (commit to the event's arrival) and
//! `sync_write_seconds` (each batch command's time in MongoDB), read from
//! `/metrics` before and after the run; the bucket counts' difference gives
//! the run's percentiles, estimated as Prometheus's `histogram_quantile` does
//! (linear within a bucket). Several instances
//! (`LOADTEST_NOTIFICATIONS_METRICS`) are added up.

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;

/// The histograms read.
pub const SYNC_LATENCY: &str = "sync_latency_seconds";
pub const SYNC_DELIVERY: &str = "sync_delivery_seconds";
pub const SYNC_WRITE: &str = "sync_write_seconds";

/// A cumulative histogram: (upper bound `le`, observations at most that),
/// by rising bound, the last being `+Inf`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Buckets(pub Vec<(f64, f64)>);

impl Buckets {
    /// Observations in all.
    pub fn count(&self) -> f64 {
        self.0.last().map_or(0.0, |&(_, n)| n)
    }

    /// Adds `n` to the bucket `le` (a new bound is inserted in order).
    fn add(&mut self, le: f64, n: f64) {
        match self.0.binary_search_by(|(b, _)| b.total_cmp(&le)) {
            Ok(i) => self.0[i].1 += n,
            Err(i) => self.0.insert(i, (le, n)),
        }
    }

    /// `self` + `other`, bucket by bucket.
    pub fn plus(&self, other: &Buckets) -> Buckets {
        let mut sum = self.clone();
        for &(le, n) in &other.0 {
            sum.add(le, n);
        }
        sum
    }

    /// Whether the instance restarted after `before` was read: it has
    /// counted fewer observations since.
    fn restarted_since(&self, before: &Buckets) -> bool {
        self.count() < before.count()
    }

    /// What was observed since `before` (an earlier read of the same
    /// instance). An instance that restarted in between counts from zero,
    /// as Prometheus's `increase` does with a counter reset.
    pub fn since(&self, before: &Buckets) -> Buckets {
        if self.restarted_since(before) {
            return self.clone();
        }
        let earlier = |le: f64| {
            before
                .0
                .iter()
                .find(|(b, _)| b.total_cmp(&le).is_eq())
                .map_or(0.0, |&(_, n)| n)
        };
        Buckets(
            self.0
                .iter()
                .map(|&(le, n)| (le, (n - earlier(le)).max(0.0)))
                .collect(),
        )
    }

    /// The `q` quantile (0 to 1), as Prometheus's `histogram_quantile`: the
    /// bucket holding the rank, then linear interpolation between its
    /// bounds (the first bucket's lower bound is 0); a rank in the `+Inf`
    /// bucket gives the highest finite bound. None without observations or
    /// without a `+Inf` bucket.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let buckets = &self.0;
        let &(last_le, total) = buckets.last()?;
        if buckets.len() < 2 || last_le != f64::INFINITY || total <= 0.0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total;
        let b = buckets.iter().position(|&(_, n)| n >= rank)?;
        if b == buckets.len() - 1 {
            return Some(buckets[b - 1].0);
        }
        let (upper, count) = buckets[b];
        if b == 0 && upper <= 0.0 {
            return Some(upper);
        }
        let (lower, below) = if b == 0 { (0.0, 0.0) } else { buckets[b - 1] };
        let in_bucket = count - below;
        if in_bucket <= 0.0 {
            return Some(upper);
        }
        Some(lower + (upper - lower) * (rank - below) / in_bucket)
    }
}

/// A histogram as one instance exported it: its buckets and the sum of its
/// observations (`<metric>_sum`), which gives the exact mean where the
/// buckets (each 1.5x the one below) only bound the quantiles.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    pub buckets: Buckets,
    pub sum: f64,
}

impl Histogram {
    /// What was observed since `before`, as [`Buckets::since`] (a restarted
    /// instance counts from zero).
    pub fn since(&self, before: &Histogram) -> Histogram {
        Histogram {
            buckets: self.buckets.since(&before.buckets),
            sum: if self.buckets.restarted_since(&before.buckets) {
                self.sum
            } else {
                (self.sum - before.sum).max(0.0)
            },
        }
    }

    /// `self` + `other`.
    pub fn plus(&self, other: &Histogram) -> Histogram {
        Histogram {
            buckets: self.buckets.plus(&other.buckets),
            sum: self.sum + other.sum,
        }
    }
}

/// Reads histogram `metric` from Prometheus's text format: its buckets (see
/// [`parse`]) and its `<metric>_sum` lines, added up.
///
/// # Errors
/// When a bucket or sum line does not parse.
pub fn parse_histogram(text: &str, metric: &str) -> Result<Histogram> {
    let name = format!("{metric}_sum");
    let mut sum = 0.0;
    for line in text.lines().map(str::trim) {
        let Some(rest) = line.strip_prefix(&name) else {
            continue;
        };
        let rest = if rest.starts_with('{') {
            split_labels(rest)
                .with_context(|| format!("in {line:?}"))?
                .1
        } else if rest.starts_with(char::is_whitespace) {
            rest
        } else {
            continue; // another metric whose name starts the same
        };
        sum += sample_value(rest, line)?;
    }
    Ok(Histogram {
        buckets: parse(text, metric)?,
        sum,
    })
}

/// Reads histogram `metric`'s buckets from Prometheus's text format, adding
/// up the series that differ in other labels.
///
/// The exporter writes a histogram only once it has recorded a value: an
/// instance that has not applied an event yet has no `<metric>_bucket` line,
/// which reads as empty buckets.
///
/// # Errors
/// When a `<metric>_bucket` line does not parse.
pub fn parse(text: &str, metric: &str) -> Result<Buckets> {
    let prefix = format!("{metric}_bucket");
    let mut buckets = Buckets::default();
    for line in text.lines().map(str::trim) {
        let Some(rest) = line.strip_prefix(&prefix) else {
            continue;
        };
        if !rest.starts_with('{') {
            continue; // another metric whose name starts the same
        }
        let (labels, value) = split_labels(rest).with_context(|| format!("in {line:?}"))?;
        let le = labels
            .iter()
            .find(|(name, _)| name == "le")
            .map(|(_, v)| parse_number(v))
            .ok_or_else(|| anyhow!("no le label in {line:?}"))?
            .with_context(|| format!("the le of {line:?}"))?;
        buckets.add(le, sample_value(value, line)?);
    }
    Ok(buckets)
}

/// The value of a sample: the first word of what follows its name and
/// labels (a timestamp may follow it). `line` names the sample in errors.
fn sample_value(rest: &str, line: &str) -> Result<f64> {
    rest.split_whitespace()
        .next()
        .ok_or_else(|| anyhow!("no value in {line:?}"))
        .and_then(parse_number)
        .with_context(|| format!("the value of {line:?}"))
}

/// A number as Prometheus writes it (`+Inf`, `-Inf` and `NaN` included).
fn parse_number(text: &str) -> Result<f64> {
    match text {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => text
            .parse()
            .map_err(|e| anyhow!("{text:?} is not a number: {e}")),
    }
}

/// Splits `{a="x",b="y"} rest` into its labels and the rest. Label values
/// may hold commas, braces and escaped quotes.
fn split_labels(text: &str) -> Result<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    let mut chars = text.char_indices().skip(1).peekable();
    loop {
        // A name, up to '=' (or the closing brace).
        let mut name = String::new();
        loop {
            match chars.next() {
                Some((i, '}')) if name.trim().is_empty() => {
                    return Ok((labels, &text[i + 1..]));
                }
                Some((_, '=')) => break,
                Some((_, ',')) if name.trim().is_empty() => {}
                Some((_, c)) => name.push(c),
                None => bail!("the labels do not end"),
            }
        }
        if chars.next().map(|(_, c)| c) != Some('"') {
            bail!("label {name:?} has no quoted value");
        }
        let mut value = String::new();
        loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => bail!("the labels do not end"),
                },
                Some((_, '"')) => break,
                Some((_, c)) => value.push(c),
                None => bail!("the labels do not end"),
            }
        }
        labels.push((name.trim().to_owned(), value));
    }
}

/// The run's percentiles by the service's own histogram, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SyncLatencyMs {
    /// Exact, from the histogram's sum: compare runs by it, since a
    /// percentile falls somewhere within a bucket 1.5x wide.
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    /// Events the histogram observed over the run.
    pub events: u64,
    /// Instances read.
    pub instances: usize,
}

impl SyncLatencyMs {
    /// The percentiles of the events observed between `before` and `after`
    /// (one read per instance, in the same order); None when there were none.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    pub fn over(before: &[Histogram], after: &[Histogram]) -> Option<Self> {
        let run = before
            .iter()
            .zip(after)
            .fold(Histogram::default(), |sum, (b, a)| sum.plus(&a.since(b)));
        let ms = |q| run.buckets.quantile(q).map(|s| s * 1e3);
        let events = run.buckets.count();
        Some(Self {
            p50: ms(0.5)?,
            p90: ms(0.9)?,
            p99: ms(0.99)?,
            mean: run.sum / events * 1e3,
            events: events.round() as u64,
            instances: after.len(),
        })
    }
}

/// One instance's sync histograms. A service too old to export a stage
/// reads as an empty histogram for it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncHistograms {
    /// [`SYNC_LATENCY`]: commit to copy, one observation per event applied.
    pub latency: Histogram,
    /// [`SYNC_DELIVERY`]: commit to arrival, one per event received.
    pub delivery: Histogram,
    /// [`SYNC_WRITE`]: one per batch command, all commands added up.
    pub write: Histogram,
}

impl SyncHistograms {
    fn parse(text: &str) -> Result<Self> {
        Ok(Self {
            latency: parse_histogram(text, SYNC_LATENCY)?,
            delivery: parse_histogram(text, SYNC_DELIVERY)?,
            write: parse_histogram(text, SYNC_WRITE)?,
        })
    }
}

/// The percentiles of one of the histograms (`pick`) between two reads of
/// every instance; None when it observed nothing.
pub fn stage(
    before: &[SyncHistograms],
    after: &[SyncHistograms],
    pick: fn(&SyncHistograms) -> &Histogram,
) -> Option<SyncLatencyMs> {
    let before: Vec<Histogram> = before.iter().map(|h| pick(h).clone()).collect();
    let after: Vec<Histogram> = after.iter().map(|h| pick(h).clone()).collect();
    SyncLatencyMs::over(&before, &after)
}

/// Reads the [`SyncHistograms`] from each base URL's `/metrics`.
///
/// # Errors
/// When an instance does not answer, or a histogram does not parse.
pub async fn read(http: &reqwest::Client, base_urls: &[String]) -> Result<Vec<SyncHistograms>> {
    let mut out = Vec::with_capacity(base_urls.len());
    for base in base_urls {
        let url = format!("{base}/metrics");
        let text = http
            .get(&url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .with_context(|| format!("reading {url}"))?
            .text()
            .await
            .with_context(|| format!("reading {url}"))?;
        out.push(SyncHistograms::parse(&text).with_context(|| format!("in {url}"))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INF: f64 = f64::INFINITY;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn buckets_are_read_from_the_text_format_and_series_added_up() {
        let text = r#"
# HELP sync_latency_seconds Time from the source commit to the MongoDB write.
# TYPE sync_latency_seconds histogram
sync_latency_seconds_bucket{le="0.01"} 10
sync_latency_seconds_bucket{le="0.1"} 60
sync_latency_seconds_bucket{le="+Inf"} 100
sync_latency_seconds_sum 12.5
sync_latency_seconds_count 100
sync_latency_seconds_bucket{type="user_updated",le="0.01"} 1
sync_latency_seconds_bucket{le="0.1",type="a,b}\"c"} 2
sync_latency_seconds_bucket{type="user_updated",le="+Inf"} 3 1700000000000
sync_latency_seconds_bucketless{le="0.1"} 99
outbox_publish_duration_seconds_bucket{le="0.01"} 7
"#;
        let buckets = parse(text, SYNC_LATENCY).expect("parses");
        assert_eq!(buckets.0, [(0.01, 11.0), (0.1, 62.0), (INF, 103.0)]);
        assert!(close(buckets.count(), 103.0));
        let with_sum = format!(
            "{text}sync_latency_seconds_sum{{type=\"user_updated\"}} 0.5 1700000000000\n\
             sync_latency_seconds_summary 7\n"
        );
        let histogram = parse_histogram(&with_sum, SYNC_LATENCY).expect("parses");
        assert_eq!(histogram.buckets, buckets);
        assert!(close(histogram.sum, 13.0), "{histogram:?}");
        assert!(parse_histogram("sync_latency_seconds_sum lots", SYNC_LATENCY).is_err());
    }

    #[test]
    fn text_without_the_histogram_is_empty_and_a_bad_line_is_an_error() {
        let none = parse("http_requests_total 3\n", SYNC_LATENCY).expect("no histogram yet");
        assert_eq!(none.count(), 0.0);
        for line in [
            "sync_latency_seconds_bucket{le=\"x\"} 1",
            "sync_latency_seconds_bucket{le=\"0.1\"} many",
            "sync_latency_seconds_bucket{type=\"a\"} 1",
            "sync_latency_seconds_bucket{le=\"0.1\" 1",
            "sync_latency_seconds_bucket{le=0.1} 1",
        ] {
            assert!(parse(line, SYNC_LATENCY).is_err(), "{line}");
        }
    }

    #[test]
    fn quantiles_interpolate_within_the_bucket_like_histogram_quantile() {
        // 10 at most 10 ms, 50 more up to 100 ms, 30 more up to 1 s, 10 beyond.
        let h = Buckets(vec![(0.01, 10.0), (0.1, 60.0), (1.0, 90.0), (INF, 100.0)]);
        // rank 50: bucket (0.01, 0.1], 40 of its 50: 0.01 + 0.09 * 0.8.
        assert!(close(h.quantile(0.5).expect("p50"), 0.082));
        // rank 5: the first bucket, from 0: 0.01 * 5 / 10.
        assert!(close(h.quantile(0.05).expect("p5"), 0.005));
        // rank 90: the top of (0.1, 1].
        assert!(close(h.quantile(0.9).expect("p90"), 1.0));
        // rank 75: (0.1, 1], 15 of its 30: 0.1 + 0.9 * 0.5.
        assert!(close(h.quantile(0.75).expect("p75"), 0.55));
        // rank 99: in +Inf: the highest finite bound.
        assert!(close(h.quantile(0.99).expect("p99"), 1.0));
        assert_eq!(Buckets(vec![(0.1, 0.0), (INF, 0.0)]).quantile(0.5), None);
        assert_eq!(Buckets(vec![(0.1, 5.0)]).quantile(0.5), None, "no +Inf");
    }

    #[test]
    fn the_run_is_the_difference_of_two_reads_summed_over_instances() {
        let histogram = |buckets: Vec<(f64, f64)>, sum: f64| Histogram {
            buckets: Buckets(buckets),
            sum,
        };
        let before = [
            histogram(vec![(0.01, 5.0), (0.1, 5.0), (INF, 5.0)], 0.02),
            histogram(vec![(0.01, 100.0), (0.1, 200.0), (INF, 300.0)], 90.0),
        ];
        let after = [
            // 10 more at most 10 ms, 40 more up to 100 ms: 1.5 s more in all.
            histogram(vec![(0.01, 15.0), (0.1, 55.0), (INF, 55.0)], 1.52),
            // Restarted: 10 observations since, all at most 10 ms, 0.06 s.
            histogram(vec![(0.01, 10.0), (0.1, 10.0), (INF, 10.0)], 0.06),
        ];
        let run = after[0].since(&before[0]).plus(&after[1].since(&before[1]));
        assert_eq!(run.buckets.0, [(0.01, 20.0), (0.1, 60.0), (INF, 60.0)]);
        let ms = SyncLatencyMs::over(&before, &after).expect("events");
        assert_eq!((ms.events, ms.instances), (60, 2));
        // (1.5 + 0.06) s over 60 events.
        assert!(close(ms.mean, 26.0), "{ms:?}");
        // rank 30 of 60: (0.01, 0.1], 10 of its 40: 10 + 90 * 0.25 = 32.5 ms.
        assert!(close(ms.p50, 32.5), "{ms:?}");
        // rank 59.4: 10 + 90 * 39.4 / 40 = 98.65 ms.
        assert!(close(ms.p99, 98.65), "{ms:?}");
        assert_eq!(SyncLatencyMs::over(&before[..1], &before[..1]), None);
    }

    #[test]
    fn each_stage_is_read_apart_and_the_write_commands_added_up() {
        let text = |delivered: u32, inserts: u32| {
            let insert_sum = 0.002 * f64::from(inserts);
            format!(
                "sync_latency_seconds_bucket{{le=\"0.01\"}} {delivered}\n\
                 sync_latency_seconds_bucket{{le=\"+Inf\"}} {delivered}\n\
                 sync_latency_seconds_sum 0.02\n\
                 sync_delivery_seconds_bucket{{le=\"0.001\"}} {delivered}\n\
                 sync_delivery_seconds_bucket{{le=\"+Inf\"}} {delivered}\n\
                 sync_delivery_seconds_sum 0.001\n\
                 sync_write_seconds_bucket{{command=\"insert\",le=\"0.002\"}} {inserts}\n\
                 sync_write_seconds_bucket{{command=\"insert\",le=\"+Inf\"}} {inserts}\n\
                 sync_write_seconds_sum{{command=\"insert\"}} {insert_sum}\n\
                 sync_write_seconds_bucket{{command=\"update\",le=\"0.002\"}} 1\n\
                 sync_write_seconds_bucket{{command=\"update\",le=\"+Inf\"}} 2\n\
                 sync_write_seconds_sum{{command=\"update\"}} 0.006\n"
            )
        };
        let before = [SyncHistograms::parse(&text(0, 0)).expect("parses")];
        let after = [SyncHistograms::parse(&text(4, 2)).expect("parses")];
        let delivery = stage(&before, &after, |h| &h.delivery).expect("deliveries");
        assert_eq!(delivery.events, 4);
        assert!(delivery.p99 <= 1.0, "{delivery:?}");
        // Both commands' series in one histogram; only the two inserts
        // came after the first read (2 ms each).
        let write = stage(&before, &after, |h| &h.write).expect("commands");
        assert_eq!(write.events, 2);
        assert!(close(write.mean, 2.0), "{write:?}");
        let latency = stage(&before, &after, |h| &h.latency).expect("events");
        assert_eq!(latency.events, 4);
        assert_eq!(stage(&before, &before, |h| &h.write), None);
    }

    /// A server answering `GET /metrics` with `body`, and 404 otherwise.
    async fn metrics_server(body: &'static str) -> String {
        crate::test_server::serve(move |line| {
            if line.starts_with("GET /metrics ") {
                ("200 OK", body.to_owned())
            } else {
                ("404 Not Found", String::new())
            }
        })
        .await
    }

    #[tokio::test]
    async fn every_instance_is_read_and_one_that_does_not_answer_is_named() {
        let base = metrics_server(
            "sync_latency_seconds_bucket{le=\"0.01\"} 3\nsync_latency_seconds_bucket{le=\"+Inf\"} 4\n\
             sync_latency_seconds_sum 0.02\nsync_latency_seconds_count 4\n",
        )
        .await;
        let http = reqwest::Client::new();
        let buckets = read(&http, &[base.clone(), base.clone()])
            .await
            .expect("read");
        assert_eq!(buckets.len(), 2);
        assert_eq!(buckets[1].latency.buckets.0, [(0.01, 3.0), (INF, 4.0)]);
        assert!(close(buckets[1].latency.sum, 0.02), "{:?}", buckets[1]);
        // A service without the stage histograms: they read as empty.
        assert_eq!(buckets[1].delivery, Histogram::default());
        let error = read(&http, &[base, "http://127.0.0.1:9".into()])
            .await
            .expect_err("nothing listens on port 9");
        assert!(
            format!("{error:#}").contains("http://127.0.0.1:9/metrics"),
            "{error:#}"
        );
        // Nothing applied yet: the exporter writes no histogram at all.
        let fresh = metrics_server("sync_events_total{outcome=\"applied\"} 0\n").await;
        let buckets = read(&http, &[fresh]).await.expect("read");
        assert_eq!(buckets[0], SyncHistograms::default());
    }
}

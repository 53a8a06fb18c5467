//! The capacity search's steps: offered write rates rising by a factor from a
//! start until a step fails, then one step at the midpoint between the last
//! step that held and the one that failed. A step that fails is run again at
//! the same rate, up to `retries` times, before the rate counts as failed:
//! near the knee a 30 s step's p99 swings across the limit from one half
//! minute to the next, and one unlucky window would end the search low.

use serde::Serialize;

/// How the offered rate rises.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// The first step's offered writes per second.
    pub start: f64,
    /// Each rising step offers this many times the one before (above 1).
    pub factor: f64,
    /// Rising steps at most, in case nothing ever fails.
    pub max_steps: usize,
    /// How many times a failed step is run again before its rate fails.
    pub retries: usize,
}

/// Why a step was run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// One of the rising steps.
    Ramp,
    /// The midpoint after the first failure.
    Bisect,
    /// The step before, run again because it failed.
    Retry,
}

/// A step that ran: why, its offered rate, and whether it held.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    pub kind: StepKind,
    pub rate: f64,
    pub held: bool,
}

/// Why the search ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The first step already failed: there is nothing to bisect.
    FirstStepFailed,
    /// A step failed and the midpoint step ran.
    Bisected,
    /// `max_steps` rising steps all held.
    MaxSteps,
}

impl End {
    pub fn describe(self) -> &'static str {
        match self {
            End::FirstStepFailed => {
                "the first step failed (lower LOADTEST_CAPACITY_START to find a rate that holds)"
            }
            End::Bisected => "bisected once after the first failing step",
            End::MaxSteps => {
                "every step held up to LOADTEST_CAPACITY_MAX_STEPS (raise it, or the start rate)"
            }
        }
    }
}

impl Schedule {
    /// The next step after those `done` (in the order they ran): its kind
    /// and offered write rate, or why the search is over.
    ///
    /// # Errors
    /// The [`End`] of the search, when there is no next step.
    pub fn next(&self, done: &[Outcome]) -> Result<(StepKind, f64), End> {
        if let Some(last) = done.last() {
            let tries = done
                .iter()
                .rev()
                .take_while(|o| !o.held && o.rate == last.rate)
                .count();
            if !last.held && tries <= self.retries {
                return Ok((StepKind::Retry, last.rate));
            }
        }
        // Each rate once: a failed try is superseded by its retry.
        let mut rates: Vec<Outcome> = Vec::with_capacity(done.len());
        for outcome in done {
            if outcome.kind == StepKind::Retry {
                rates.pop();
            }
            rates.push(*outcome);
        }
        let Some(failed) = rates.iter().position(|o| !o.held) else {
            if rates.len() >= self.max_steps {
                return Err(End::MaxSteps);
            }
            let rate = rates
                .last()
                .map_or(self.start, |last| last.rate * self.factor);
            return Ok((StepKind::Ramp, rate));
        };
        if failed == 0 {
            return Err(End::FirstStepFailed);
        }
        if rates.len() > failed + 1 {
            return Err(End::Bisected);
        }
        let (good, bad) = (rates[failed - 1].rate, rates[failed].rate);
        Ok((StepKind::Bisect, (good + bad) / 2.0))
    }
}

/// The highest offered rate that held, and its step's index.
pub fn sustainable(done: &[Outcome]) -> Option<(usize, f64)> {
    done.iter()
        .enumerate()
        .filter(|(_, o)| o.held)
        .map(|(i, o)| (i, o.rate))
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

/// The requests per second (whole, at least 1) that offer `write_rate`
/// writes per second when `write_share` of the requests are writes, and the
/// write rate they really offer.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)]
pub fn requests_for(write_rate: f64, write_share: f64) -> (usize, f64) {
    let share = write_share.clamp(f64::MIN_POSITIVE, 1.0);
    let requests = (write_rate / share).round().max(1.0) as usize;
    (requests, requests as f64 * share)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEDULE: Schedule = Schedule {
        start: 100.0,
        factor: 1.25,
        max_steps: 30,
        retries: 0,
    };

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    /// Runs the schedule against a stack that holds up to `limit` writes/s.
    fn run(schedule: &Schedule, limit: f64) -> (Vec<(StepKind, f64)>, End) {
        let (done, end) = run_with(schedule, |rate, _| rate <= limit);
        (done.iter().map(|o| (o.kind, o.rate)).collect(), end)
    }

    /// Runs the schedule against a stack whose `holds(rate, step number)`.
    fn run_with(schedule: &Schedule, holds: impl Fn(f64, usize) -> bool) -> (Vec<Outcome>, End) {
        let mut done = Vec::new();
        loop {
            match schedule.next(&done) {
                Ok((kind, rate)) => {
                    let held = holds(rate, done.len() + 1);
                    done.push(Outcome { kind, rate, held });
                }
                Err(end) => return (done, end),
            }
        }
    }

    #[test]
    fn steps_rise_by_the_factor_from_the_start_then_bisect_once_after_the_first_failure() {
        let (steps, end) = run(&SCHEDULE, 200.0);
        let rates: Vec<f64> = steps.iter().map(|s| s.1).collect();
        let expected = [100.0, 125.0, 156.25, 195.3125, 244.140_625, 219.726_562_5];
        assert_eq!(rates.len(), expected.len(), "{rates:?}");
        for (rate, want) in rates.iter().zip(expected) {
            assert!(close(*rate, want), "{rates:?}");
        }
        assert!(steps[..5].iter().all(|s| s.0 == StepKind::Ramp));
        assert_eq!(steps[5].0, StepKind::Bisect);
        assert_eq!(end, End::Bisected);
    }

    #[test]
    fn the_search_ends_after_the_bisect_whether_it_held_or_not() {
        // The outcomes of the steps run against a stack that holds up to `limit`.
        let outcomes = |limit: f64| run_with(&SCHEDULE, |rate, _| rate <= limit);
        // Holds up to 230: the midpoint 219.7 holds.
        let (done, end) = outcomes(230.0);
        assert_eq!((done.len(), end), (6, End::Bisected));
        let (index, rate) = sustainable(&done).expect("some held");
        assert_eq!(index, 5, "the midpoint is the highest that held");
        assert!(close(rate, 219.726_562_5));
        // Holds up to 200: the midpoint fails, the last rising step stands.
        let (done, _) = outcomes(200.0);
        assert_eq!(sustainable(&done).map(|s| s.0), Some(3));
    }

    #[test]
    fn a_failing_first_step_ends_the_search_with_nothing_sustainable() {
        let (steps, end) = run(&SCHEDULE, 50.0);
        assert_eq!(steps, [(StepKind::Ramp, 100.0)]);
        assert_eq!(end, End::FirstStepFailed);
        assert_eq!(
            sustainable(&[Outcome {
                kind: StepKind::Ramp,
                rate: 100.0,
                held: false
            }]),
            None
        );
    }

    #[test]
    fn the_search_stops_after_max_steps_when_nothing_fails() {
        let schedule = Schedule {
            max_steps: 3,
            ..SCHEDULE
        };
        let (steps, end) = run(&schedule, f64::INFINITY);
        assert_eq!(steps.len(), 3);
        assert_eq!(end, End::MaxSteps);
    }

    #[test]
    fn a_failed_step_runs_again_and_its_rate_fails_only_if_every_try_fails() {
        let schedule = Schedule {
            retries: 1,
            ..SCHEDULE
        };
        // Holds up to 200, but step 3 (156.25, below the limit) is unlucky
        // once: its retry holds and the ramp goes on from it.
        let (done, end) = run_with(&schedule, |rate, step| rate <= 200.0 && step != 3);
        let kinds: Vec<(StepKind, bool)> = done.iter().map(|o| (o.kind, o.held)).collect();
        use StepKind::{Bisect, Ramp, Retry};
        assert_eq!(
            kinds,
            [
                (Ramp, true),
                (Ramp, true),
                (Ramp, false),
                (Retry, true),
                (Ramp, true),
                // 244 fails twice: the rate fails, and the midpoint runs.
                (Ramp, false),
                (Retry, false),
                (Bisect, false),
                (Retry, false),
            ]
        );
        assert!(close(done[3].rate, 156.25) && close(done[6].rate, 244.140_625));
        assert!(close(done[7].rate, 219.726_562_5) && close(done[8].rate, done[7].rate));
        assert_eq!(end, End::Bisected);
        // The highest rate that held: 195, from step 5.
        assert_eq!(sustainable(&done).map(|s| s.0), Some(4));
    }

    #[test]
    fn a_first_step_that_fails_every_try_ends_the_search() {
        let schedule = Schedule {
            retries: 2,
            ..SCHEDULE
        };
        let (done, end) = run_with(&schedule, |_, _| false);
        assert_eq!(done.len(), 3, "the step and two retries");
        assert!(done[1..].iter().all(|o| o.kind == StepKind::Retry));
        assert_eq!(end, End::FirstStepFailed);
    }

    #[test]
    fn the_requests_offer_the_write_rate_when_reads_share_them() {
        assert_eq!(requests_for(100.0, 1.0), (100, 100.0));
        // Half the requests are reads: twice the requests.
        assert_eq!(requests_for(156.25, 0.5), (313, 156.5));
        assert_eq!(requests_for(0.1, 1.0).0, 1, "at least one request/s");
    }
}

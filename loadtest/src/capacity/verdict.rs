//! Whether a capacity step held: its watched writes arrived in time (p99 at
//! most the bound, none timed out), the copy equalled the source soon after
//! the step, and the stack took the rate offered.

use crate::consistency::Consistency;

/// What a step must meet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Criteria {
    /// Propagation p99 of the step's watched writes, at most (ms).
    pub max_p99_ms: f64,
    /// How long after the step the copy may take to equal the source (s):
    /// a consistency check begun within it must find them equal.
    pub converge_s: f64,
    /// The achieved write rate must be at least this share of the offered
    /// one; below it the writers could not keep up (the write path is
    /// saturated, or too few goose users for the rate).
    pub min_achieved: f64,
}

/// What a step measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    pub offered_write_rps: f64,
    pub achieved_write_rps: f64,
    /// Writes watched for arrival (timeouts included).
    pub watched: u64,
    pub p99_ms: f64,
    pub timeouts: u64,
    /// The last consistency check of the step, or why none succeeded.
    pub consistency: Result<Consistency, String>,
    /// Seconds from the step's end to the check that found the copy equal;
    /// None when none did within the budget.
    pub converged_after_s: Option<f64>,
}

/// Why the step did not hold; empty when it held.
pub fn why_not(criteria: &Criteria, m: &Measured) -> Vec<String> {
    let mut reasons = Vec::new();
    if m.achieved_write_rps < criteria.min_achieved * m.offered_write_rps {
        reasons.push(format!(
            "achieved {:.0} of {:.0} writes/s offered (below {:.0}%)",
            m.achieved_write_rps,
            m.offered_write_rps,
            criteria.min_achieved * 100.0
        ));
    }
    let arrived = m.watched.saturating_sub(m.timeouts);
    if m.watched == 0 {
        reasons.push("no write was watched".to_owned());
    } else if arrived > 0 && m.p99_ms > criteria.max_p99_ms {
        reasons.push(format!(
            "propagation p99 {:.0} ms > {:.0} ms",
            m.p99_ms, criteria.max_p99_ms
        ));
    }
    if m.timeouts > 0 {
        reasons.push(format!(
            "{} of {} watched writes timed out",
            m.timeouts, m.watched
        ));
    }
    if m.converged_after_s.is_none() {
        reasons.push(match &m.consistency {
            Ok(c) => format!(
                "the copy differed from the source {:.0} s after the step (missing {}, stale {}, extra {})",
                criteria.converge_s, c.missing, c.stale, c.extra
            ),
            Err(e) => format!(
                "no consistency check begun within {:.0} s after the step succeeded ({e})",
                criteria.converge_s
            ),
        });
    }
    reasons
}

/// The criteria the tests judge steps by.
#[cfg(test)]
pub(crate) const TEST_CRITERIA: Criteria = Criteria {
    max_p99_ms: 1000.0,
    converge_s: 5.0,
    min_achieved: 0.9,
};

#[cfg(test)]
mod tests {
    use super::*;

    const CRITERIA: Criteria = TEST_CRITERIA;

    fn good() -> Measured {
        Measured {
            offered_write_rps: 200.0,
            achieved_write_rps: 199.0,
            watched: 1_500,
            p99_ms: 850.0,
            timeouts: 0,
            consistency: Ok(Consistency {
                checked: 5_000,
                ..Consistency::default()
            }),
            converged_after_s: Some(1.2),
        }
    }

    #[test]
    fn a_step_within_every_bound_holds() {
        assert_eq!(why_not(&CRITERIA, &good()), Vec::<String>::new());
        let at_the_bound = Measured {
            p99_ms: 1000.0,
            achieved_write_rps: 180.0,
            ..good()
        };
        assert!(
            why_not(&CRITERIA, &at_the_bound).is_empty(),
            "the bounds are inclusive"
        );
    }

    #[test]
    fn each_failed_bound_is_a_reason() {
        let cases = [
            (
                Measured {
                    p99_ms: 1001.0,
                    ..good()
                },
                "propagation p99 1001 ms > 1000 ms",
            ),
            (
                Measured {
                    timeouts: 2,
                    ..good()
                },
                "2 of 1500 watched writes timed out",
            ),
            (
                Measured {
                    converged_after_s: None,
                    consistency: Ok(Consistency {
                        checked: 5_000,
                        missing: 3,
                        stale: 1,
                        extra: 0,
                    }),
                    ..good()
                },
                "the copy differed from the source 5 s after the step (missing 3, stale 1, extra 0)",
            ),
            (
                Measured {
                    converged_after_s: None,
                    consistency: Err("503 Service Unavailable".to_owned()),
                    ..good()
                },
                "no consistency check begun within 5 s after the step succeeded (503 Service Unavailable)",
            ),
            (
                Measured {
                    achieved_write_rps: 170.0,
                    ..good()
                },
                "achieved 170 of 200 writes/s offered (below 90%)",
            ),
            (
                Measured {
                    watched: 0,
                    p99_ms: 0.0,
                    ..good()
                },
                "no write was watched",
            ),
        ];
        for (measured, reason) in cases {
            assert_eq!(why_not(&CRITERIA, &measured), [reason], "{reason}");
        }
    }

    #[test]
    fn several_failures_give_every_reason() {
        let bad = Measured {
            p99_ms: 30_000.0,
            timeouts: 40,
            converged_after_s: None,
            ..good()
        };
        assert_eq!(why_not(&CRITERIA, &bad).len(), 3);
    }
}

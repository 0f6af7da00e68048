//! When to try again: a schedule of delays (10 s, 1 min, 5 min, 30 min, 2 h, ... by default)
//! with random jitter, so that events that failed together do not all retry together.

use crate::config::Processing;
use crate::store::Next;

/// The retry policy of the pipeline.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub schedule_secs: Vec<u64>,
    pub jitter: f64,
}

impl RetryPolicy {
    /// The policy configured under `[processing]`.
    pub fn from_config(p: &Processing) -> RetryPolicy {
        RetryPolicy {
            max_attempts: p.max_attempts,
            schedule_secs: p.retry_schedule_secs.clone(),
            jitter: p.retry_jitter,
        }
    }

    /// The delay after failed attempt `attempt` (1-based) before jitter, in ms.
    pub fn base_delay_ms(&self, attempt: u32) -> u64 {
        let i = (attempt.max(1) as usize - 1).min(self.schedule_secs.len().saturating_sub(1));
        self.schedule_secs.get(i).copied().unwrap_or(60) * 1000
    }

    /// What follows failed attempt `attempt` that ended at `now_ms`.
    pub fn after_failure(&self, attempt: u32, now_ms: u64) -> Next {
        if attempt >= self.max_attempts {
            return Next::Dead;
        }
        let base = self.base_delay_ms(attempt) as f64;
        let factor = 1.0 + self.jitter * (rand::random::<f64>() * 2.0 - 1.0);
        Next::RetryAt(now_ms + (base * factor).round() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(jitter: f64) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            schedule_secs: vec![10, 60, 300],
            jitter,
        }
    }

    #[test]
    fn follows_the_schedule_then_repeats_its_last_step() {
        let p = policy(0.0);
        assert_eq!(p.after_failure(1, 0), Next::RetryAt(10_000));
        assert_eq!(p.after_failure(2, 0), Next::RetryAt(60_000));
        assert_eq!(p.after_failure(3, 0), Next::RetryAt(300_000));
        assert_eq!(p.base_delay_ms(9), 300_000);
    }

    #[test]
    fn gives_up_after_max_attempts() {
        assert_eq!(policy(0.0).after_failure(4, 0), Next::Dead);
    }

    #[test]
    fn jitter_stays_within_its_bounds_and_varies() {
        let p = policy(0.2);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let Next::RetryAt(at) = p.after_failure(1, 0) else {
                panic!("not a retry")
            };
            assert!((8_000..=12_000).contains(&at), "{at}");
            seen.insert(at);
        }
        assert!(seen.len() > 10, "jitter should spread retries");
    }
}

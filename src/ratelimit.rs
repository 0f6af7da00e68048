//! A token bucket: at most `rate` events per second on average, in bursts of `burst`.
//!
//! Used to keep a flood of rejected requests from filling the disk (beyond the rate they are
//! counted, not stored) and to smooth processing. Small enough that a crate would cost more.

use std::sync::Mutex;
use tokio::time::Instant;

/// A thread-safe token bucket.
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: f64, burst: f64) -> TokenBucket {
        TokenBucket {
            rate,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Refills by the time passed, then takes a token if there is one; otherwise says how
    /// long until there will be.
    fn take_or_wait(&self) -> Result<(), std::time::Duration> {
        self.take_n_or_wait(1.0)
    }

    fn take_n_or_wait(&self, n: f64) -> Result<(), std::time::Duration> {
        // A poisoned lock only means another thread panicked mid-update of two numbers.
        let mut state = match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(state.1).as_secs_f64();
        state.0 = (state.0 + elapsed * self.rate).min(self.burst);
        state.1 = now;
        if state.0 >= n {
            state.0 -= n;
            Ok(())
        } else {
            // A rate of 0 (or more tokens than the burst holds) never refills enough.
            Err(
                std::time::Duration::try_from_secs_f64((n - state.0) / self.rate)
                    .unwrap_or(std::time::Duration::MAX),
            )
        }
    }

    /// Takes a token if one is there.
    pub fn try_take(&self) -> bool {
        self.take_or_wait().is_ok()
    }

    /// Takes `n` tokens at once if they are there (a budget counted in bytes, say).
    pub fn try_take_n(&self, n: f64) -> bool {
        self.take_n_or_wait(n).is_ok()
    }

    /// Takes a token, waiting for one if the bucket is empty.
    pub async fn take(&self) {
        while let Err(wait) = self.take_or_wait() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn burst_then_rate() {
        let bucket = TokenBucket::new(2.0, 3.0);
        assert!(bucket.try_take() && bucket.try_take() && bucket.try_take());
        assert!(!bucket.try_take());
        tokio::time::advance(std::time::Duration::from_millis(500)).await;
        assert!(bucket.try_take());
        assert!(!bucket.try_take());
        let start = Instant::now();
        bucket.take().await;
        assert_eq!(start.elapsed().as_millis(), 500);
    }

    #[test]
    fn a_zero_rate_or_an_oversized_take_is_refused_without_panic() {
        let bytes = TokenBucket::new(0.0, 0.0);
        assert!(!bytes.try_take_n(100.0));
        let small = TokenBucket::new(10.0, 100.0);
        assert!(!small.try_take_n(101.0));
        assert!(small.try_take_n(100.0));
    }
}

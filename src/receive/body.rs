//! Reading a request body with a hard limit, whether or not it has a Content-Length.
//!
//! warp's `content_length_limit` only looks at the header (and answers 411 without one);
//! senders may stream a chunked body, so hookd reads the stream itself and stops as soon as
//! the limit is passed, without buffering the rest. It also holds the sender to a pace: the
//! whole body within a deadline, and no slower than a minimum rate once a short start has
//! passed, so a trickling sender cannot hold a connection and its buffer for long. And it
//! charges every byte it buffers to a budget shared by all requests, so the memory bodies take
//! is bounded however many senders there are.

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// What a sender gets before the minimum rate applies (TCP slow start, a first slow hop).
const RATE_START: Duration = Duration::from_secs(2);

/// Body bytes that all requests may hold at once.
pub struct Budget(Arc<Semaphore>);

impl Budget {
    /// A budget of `bytes`.
    pub fn new(bytes: usize) -> Budget {
        Budget(Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS))))
    }

    /// Whether `bytes` more would fit now: a body declaring more is refused before it is read.
    pub fn admits(&self, bytes: usize) -> bool {
        self.0.available_permits() >= bytes
    }

    fn take(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        let n = u32::try_from(bytes).ok()?;
        self.0.clone().try_acquire_many_owned(n).ok()
    }
}

/// The budget a read body holds; returned to the budget when dropped.
#[derive(Debug)]
pub struct Held(Option<OwnedSemaphorePermit>);

impl Held {
    fn add(&mut self, permit: OwnedSemaphorePermit) {
        match &mut self.0 {
            Some(held) => held.merge(permit),
            None => self.0 = Some(permit),
        }
    }
}

/// How fast a body must arrive.
#[derive(Clone, Copy, Debug)]
pub struct Pace {
    /// The whole body must have arrived by then.
    pub deadline: Duration,
    /// After [`RATE_START`], at least this many bytes per second on average; 0: no minimum.
    pub min_bytes_per_sec: u64,
}

impl Pace {
    /// When the body read gives up if nothing more arrives, `received` bytes in.
    fn give_up_at(&self, start: Instant, received: usize) -> Instant {
        let overall = start + self.deadline;
        if self.min_bytes_per_sec == 0 {
            return overall;
        }
        let earned = Duration::from_secs_f64(received as f64 / self.min_bytes_per_sec as f64);
        overall.min(start + RATE_START + earned)
    }
}

/// Why a body could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// More than the limit arrived (or was announced).
    TooLarge,
    /// The connection failed mid-body.
    Read,
    /// The body did not arrive within its deadline or fell below the minimum rate.
    TooSlow,
    /// The shared budget of body bytes ran out.
    OverBudget,
}

/// Collects `stream` into one buffer of at most `limit` bytes, arriving at `pace`, each byte
/// charged to `budget` until the returned [`Held`] is dropped.
pub async fn read_limited<S, B>(
    stream: S,
    limit: usize,
    pace: Pace,
    budget: &Budget,
) -> Result<(Bytes, Held), BodyError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let start = Instant::now();
    let mut stream = std::pin::pin!(stream);
    let mut body = BytesMut::new();
    let mut held = Held(None);
    loop {
        let next = tokio::time::timeout_at(pace.give_up_at(start, body.len()), stream.next());
        let Some(chunk) = next.await.map_err(|_| BodyError::TooSlow)? else {
            break;
        };
        let mut chunk = chunk.map_err(|_| BodyError::Read)?;
        if body.len() + chunk.remaining() > limit {
            return Err(BodyError::TooLarge);
        }
        held.add(
            budget
                .take(chunk.remaining())
                .ok_or(BodyError::OverBudget)?,
        );
        while chunk.has_remaining() {
            let part = chunk.chunk();
            body.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok((body.freeze(), held))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, warp::Error>> {
        futures_util::stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        )
    }

    const PACE: Pace = Pace {
        deadline: Duration::from_secs(30),
        min_bytes_per_sec: 100,
    };

    #[tokio::test]
    async fn body_within_the_limit_is_joined() {
        let budget = Budget::new(100);
        let (body, held) = read_limited(chunks(&[b"ab", b"cd"]), 4, PACE, &budget)
            .await
            .unwrap();
        assert_eq!(&body[..], b"abcd");
        assert!(!budget.admits(97));
        drop(held);
        assert!(budget.admits(100));
    }

    #[tokio::test]
    async fn a_body_past_the_shared_budget_is_refused() {
        let budget = Budget::new(5);
        let (_first, _held) = read_limited(chunks(&[b"abc"]), 10, PACE, &budget)
            .await
            .unwrap();
        assert_eq!(
            read_limited(chunks(&[b"ab", b"c"]), 10, PACE, &budget)
                .await
                .map(|(b, _)| b),
            Err(BodyError::OverBudget)
        );
        assert!(budget.admits(2), "a refused body gives its bytes back");
    }

    #[tokio::test]
    async fn body_over_the_limit_is_refused() {
        assert_eq!(
            read_limited(chunks(&[b"ab", b"cde"]), 4, PACE, &Budget::new(100))
                .await
                .map(|(b, _)| b),
            Err(BodyError::TooLarge)
        );
    }

    /// `parts`, then a stream that never ends.
    fn stalls_after(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, warp::Error>> {
        chunks(parts).chain(futures_util::stream::pending())
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_is_given_up_once_below_the_minimum_rate() {
        let started = Instant::now();
        // 100 bytes earn one second beyond the two-second start.
        static BODY: [u8; 100] = [0; 100];
        let result = read_limited(stalls_after(&[&BODY]), 1000, PACE, &Budget::new(1000)).await;
        assert_eq!(result.map(|(b, _)| b), Err(BodyError::TooSlow));
        assert_eq!(started.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_minimum_rate_the_deadline_still_holds() {
        let started = Instant::now();
        let pace = Pace {
            deadline: Duration::from_secs(7),
            min_bytes_per_sec: 0,
        };
        let result = read_limited(stalls_after(&[b"ab"]), 1000, pace, &Budget::new(1000)).await;
        assert_eq!(result.map(|(b, _)| b), Err(BodyError::TooSlow));
        assert_eq!(started.elapsed(), Duration::from_secs(7));
    }

    proptest::proptest! {
        #[test]
        fn any_chunking_is_joined_or_refused_at_the_limit(
            parts in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64), 0..20),
            limit in 0usize..700,
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
            let whole: Vec<u8> = parts.concat();
            let stream = futures_util::stream::iter(
                parts.into_iter().map(|p| Ok::<_, warp::Error>(Bytes::from(p))).collect::<Vec<_>>(),
            );
            let budget = Budget::new(1000);
            let result = rt.block_on(read_limited(stream, limit, PACE, &budget)).map(|(b, _)| b);
            if whole.len() <= limit {
                proptest::prop_assert_eq!(result, Ok(Bytes::from(whole)));
            } else {
                proptest::prop_assert_eq!(result, Err(BodyError::TooLarge));
            }
            proptest::prop_assert!(budget.admits(1000), "every byte is given back");
        }
    }
}

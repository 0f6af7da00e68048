//! Reading a request body with a hard limit, whether or not it has a Content-Length.
//!
//! warp's `content_length_limit` only looks at the header (and answers 411 without one);
//! senders may stream a chunked body, so hookd reads the stream itself and stops as soon as
//! the limit is passed, without buffering the rest.

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

/// Why a body could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// More than the limit arrived (or was announced).
    TooLarge,
    /// The connection failed mid-body.
    Read,
}

/// Collects `stream` into one buffer of at most `limit` bytes.
pub async fn read_limited<S, B>(stream: S, limit: usize) -> Result<Bytes, BodyError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let mut stream = std::pin::pin!(stream);
    let mut body = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk.map_err(|_| BodyError::Read)?;
        if body.len() + chunk.remaining() > limit {
            return Err(BodyError::TooLarge);
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            body.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(body.freeze())
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

    #[tokio::test]
    async fn body_within_the_limit_is_joined() {
        let body = read_limited(chunks(&[b"ab", b"cd"]), 4).await.unwrap();
        assert_eq!(&body[..], b"abcd");
    }

    #[tokio::test]
    async fn body_over_the_limit_is_refused() {
        assert_eq!(
            read_limited(chunks(&[b"ab", b"cde"]), 4).await,
            Err(BodyError::TooLarge)
        );
    }
}

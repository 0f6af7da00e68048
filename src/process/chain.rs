//! An error with its whole chain of causes, as one line for attempt records and messages.
//!
//! An HTTP client error alone says `error sending request`; what the operator needs (refused,
//! DNS, TLS, timeout) is several `source()`s down.

/// `e` followed by each of its sources, joined with ": ". A source whose text its error
/// already ends with is not repeated.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !text.is_empty() && !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("error sending request")]
    struct Outer(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("tcp connect error: {0}")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn every_cause_is_named_once() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        assert_eq!(
            chain(&Outer(Middle(io))),
            "error sending request: tcp connect error: Connection refused"
        );
    }

    #[test]
    fn an_error_without_a_source_is_its_own_text() {
        let io = std::io::Error::other("disk full");
        assert_eq!(chain(&io), "disk full");
    }
}

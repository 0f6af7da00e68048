//! The `log` processor: the event is already in the log; record that nothing else is to do.

use super::{Job, ProcessError, Processor};
use futures_util::future::BoxFuture;

/// Marks events done without side effects (the standard profile's default).
pub struct LogProcessor;

impl Processor for LogProcessor {
    fn name(&self) -> &'static str {
        "log"
    }

    fn process<'a>(&'a self, _job: &'a Job) -> BoxFuture<'a, Result<String, ProcessError>> {
        Box::pin(async { Ok("recorded".to_string()) })
    }
}

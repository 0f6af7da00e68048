//! NDJSON validation while an export streams in: split the bytes into lines (a line may span
//! chunks), check that each non-blank line is a FHIR resource with `resourceType` and `id`,
//! count resources by type, and hand each one's location to the resource index.

use super::retry;
use crate::process::ProcessError;
use crate::store::fasten::{ResourceIndexer, ResourceLoc};
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Longest NDJSON line accepted (a DocumentReference may inline a large attachment).
pub const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;

/// Where validated resources are recorded.
pub trait Index {
    /// Why an entry could not be recorded.
    type Error: std::fmt::Display;
    /// Records where the resource `(resource_type, id)` is.
    fn add(&mut self, resource_type: &str, id: &str, loc: &ResourceLoc) -> Result<(), Self::Error>;
}

impl Index for ResourceIndexer {
    type Error = crate::store::StoreError;
    fn add(&mut self, resource_type: &str, id: &str, loc: &ResourceLoc) -> Result<(), Self::Error> {
        ResourceIndexer::add(self, resource_type, id, loc)
    }
}

/// The first fields of one NDJSON line; the rest is checked for syntax and skipped.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "resourceType", borrow)]
    resource_type: Cow<'a, str>,
    #[serde(borrow)]
    id: Cow<'a, str>,
}

/// Validates and indexes one file of an export as its bytes arrive.
pub struct Validator<'a, I> {
    index: I,
    task: &'a str,
    file: &'a str,
    /// Resources seen, by type.
    counts: BTreeMap<String, u64>,
    line_no: u64,
    /// The bytes of a line not yet ended by a newline.
    partial: Vec<u8>,
    /// File offset of the first byte of `partial`.
    offset: u64,
}

impl<'a, I: Index> Validator<'a, I> {
    /// A validator for `file` of export `task`, recording resources in `index`.
    pub fn new(index: I, task: &'a str, file: &'a str) -> Self {
        Validator {
            index,
            task,
            file,
            counts: BTreeMap::new(),
            line_no: 0,
            partial: Vec::new(),
            offset: 0,
        }
    }

    /// Takes the next bytes of the file.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), ProcessError> {
        let mut rest = bytes;
        while let Some(nl) = rest.iter().position(|b| *b == b'\n') {
            let (line, tail) = rest.split_at(nl);
            if self.partial.is_empty() {
                self.line(line, self.offset)?;
                self.offset += line.len() as u64 + 1;
            } else {
                let mut whole = std::mem::take(&mut self.partial);
                whole.extend_from_slice(line);
                self.line(&whole, self.offset)?;
                self.offset += whole.len() as u64 + 1;
                whole.clear();
                self.partial = whole; // keeps the allocation for the next long line
            }
            rest = &tail[1..];
        }
        if self.partial.len() + rest.len() > MAX_LINE_BYTES {
            return Err(retry(format!(
                "{}: line {} is longer than {MAX_LINE_BYTES} bytes",
                self.file,
                self.line_no + 1
            )));
        }
        self.partial.extend_from_slice(rest);
        Ok(())
    }

    /// Checks the last line (which needs no newline); returns the file's length and its
    /// resources by type.
    pub fn finish(mut self) -> Result<(u64, BTreeMap<String, u64>), ProcessError> {
        if !self.partial.is_empty() {
            let last = std::mem::take(&mut self.partial);
            self.line(&last, self.offset)?;
            self.offset += last.len() as u64;
        }
        Ok((self.offset, self.counts))
    }

    fn line(&mut self, raw: &[u8], offset: u64) -> Result<(), ProcessError> {
        self.line_no += 1;
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let head: Head = serde_json::from_slice(line).map_err(|e| {
            retry(format!(
                "{}: line {} is not a FHIR resource with resourceType and id: {e}",
                self.file, self.line_no
            ))
        })?;
        if head.resource_type.is_empty()
            || head.id.is_empty()
            || head.resource_type.contains('\0')
            || head.id.contains('\0')
        {
            return Err(retry(format!(
                "{}: line {} has an empty or invalid resourceType or id",
                self.file, self.line_no
            )));
        }
        match self.counts.get_mut(head.resource_type.as_ref()) {
            Some(n) => *n += 1,
            None => {
                self.counts.insert(head.resource_type.to_string(), 1);
            }
        }
        let loc = ResourceLoc {
            task_id: self.task.to_string(),
            file: self.file.to_string(),
            offset,
            len: line.len() as u64,
        };
        self.index
            .add(&head.resource_type, &head.id, &loc)
            .map_err(|e| retry(format!("cannot index {}: {e}", self.file)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Entries = Vec<(String, String, u64, u64)>;

    impl Index for &mut Entries {
        type Error = std::convert::Infallible;
        fn add(&mut self, t: &str, id: &str, loc: &ResourceLoc) -> Result<(), Self::Error> {
            self.push((t.into(), id.into(), loc.offset, loc.len));
            Ok(())
        }
    }

    /// Feeds `chunks` and returns the entries, the counts and the length.
    fn run(chunks: &[&[u8]]) -> Result<(Entries, BTreeMap<String, u64>, u64), ProcessError> {
        let mut entries = Entries::new();
        let mut v = Validator::new(&mut entries, "t", "f.ndjson");
        for c in chunks {
            v.feed(c)?;
        }
        let (len, counts) = v.finish()?;
        Ok((entries, counts, len))
    }

    #[test]
    fn lines_split_across_chunks_are_indexed_at_their_offsets() {
        let a = br#"{"resourceType":"Patient","id":"p1"}"#;
        let b = br#"{"resourceType":"Observation","id":"o1","value":1}"#;
        let text = [&a[..], b"\r\n\n", &b[..]].concat();
        let (entries, counts, len) = run(&[&text[..10], &text[10..40], &text[40..]]).unwrap();
        assert_eq!(len, text.len() as u64);
        assert_eq!(
            entries,
            [
                ("Patient".into(), "p1".into(), 0, a.len() as u64),
                (
                    "Observation".into(),
                    "o1".into(),
                    a.len() as u64 + 3,
                    b.len() as u64
                ),
            ]
        );
        assert_eq!(counts["Patient"], 1);
        assert_eq!(counts["Observation"], 1);
    }

    #[test]
    fn a_line_that_is_not_a_resource_names_its_number() {
        let err =
            run(&[b"{\"resourceType\":\"Patient\",\"id\":\"p\"}\n{\"id\":\"x\"}\n"]).unwrap_err();
        let ProcessError::Retry(msg) = err else {
            panic!("{err:?}")
        };
        assert!(
            msg.starts_with("f.ndjson: line 2 is not a FHIR resource"),
            "{msg}"
        );
        let err = run(&[b"{\"resourceType\":\"\",\"id\":\"p\"}"]).unwrap_err();
        assert!(err.to_string().contains("line 1 has an empty"), "{err}");
    }
}

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
    /// Writes entries still buffered; called once every line is read.
    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

impl Index for ResourceIndexer {
    type Error = crate::store::StoreError;
    fn add(&mut self, resource_type: &str, id: &str, loc: &ResourceLoc) -> Result<(), Self::Error> {
        ResourceIndexer::add(self, resource_type, id, loc)
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        ResourceIndexer::flush(self)
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
        self.index
            .flush()
            .map_err(|e| retry(format!("cannot index {}: {e}", self.file)))?;
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

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    /// Indexes nothing: the properties below are about splitting and counting.
    struct Discard;

    impl Index for Discard {
        type Error = std::convert::Infallible;
        fn add(&mut self, _: &str, _: &str, _: &ResourceLoc) -> Result<(), Self::Error> {
            Ok(())
        }
    }

    /// `bytes` cut at `cuts` (positions taken modulo its length, in any order).
    fn chunked(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
        let mut at: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        at.push(0);
        at.push(bytes.len());
        at.sort_unstable();
        at.windows(2).map(|w| bytes[w[0]..w[1]].to_vec()).collect()
    }

    fn validate(chunks: &[Vec<u8>]) -> Result<(u64, BTreeMap<String, u64>), ProcessError> {
        let mut v = Validator::new(Discard, "t", "f.ndjson");
        for c in chunks {
            v.feed(c)?;
        }
        v.finish()
    }

    /// One NDJSON line: a resource, or a blank line, with or without a `\r`.
    fn line() -> impl Strategy<Value = (Option<String>, String)> {
        let resource = (
            proptest::sample::select(vec!["Patient", "Observation", "Condition", "Encounter"]),
            "[^\\x00]{1,12}",
            any::<bool>(),
        )
            .prop_map(|(kind, id, extra)| {
                let mut r = serde_json::json!({"resourceType": kind, "id": id});
                if extra {
                    r["meta"] = serde_json::json!({"text": "a\nb", "n": [1, 2]});
                }
                (Some(kind.to_string()), r.to_string())
            });
        let blank = "[ \t]{0,3}".prop_map(|s| (None, s));
        (prop_oneof![3 => resource, 1 => blank], any::<bool>())
            .prop_map(|((kind, text), cr)| (kind, if cr { text + "\r" } else { text }))
    }

    proptest! {
        #[test]
        fn any_bytes_in_any_chunks_validate_without_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..600),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
        ) {
            if let Ok((len, counts)) = validate(&chunked(&bytes, &cuts)) {
                prop_assert_eq!(len, bytes.len() as u64);
                let lines = bytes.split(|b| *b == b'\n').count() as u64;
                prop_assert!(counts.values().sum::<u64>() <= lines);
            }
        }

        #[test]
        fn counts_on_valid_files_agree_with_a_line_count(
            lines in proptest::collection::vec(line(), 0..30),
            trailing_newline in any::<bool>(),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
        ) {
            let mut text = lines.iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>().join("\n");
            if trailing_newline {
                text.push('\n');
            }
            let mut expected = BTreeMap::new();
            for kind in lines.iter().filter_map(|(k, _)| k.clone()) {
                *expected.entry(kind).or_insert(0u64) += 1;
            }
            let (len, counts) = validate(&chunked(text.as_bytes(), &cuts)).unwrap();
            prop_assert_eq!(len, text.len() as u64);
            prop_assert_eq!(counts, expected);
        }
    }
}

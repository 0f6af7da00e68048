//! Reading the file into the raw structs, reporting every key hookd does not know and every
//! value of the wrong type, in plain words, rather than serde's first complaint.
//!
//! serde stops at the first problem, so the file is read as a TOML table, deserialized, and
//! on each error the offending key is set aside (or a missing one stood in for) and the
//! table read again. Validation then runs on what is left, so a misspelt key and a bad value
//! elsewhere are reported by one run; errors about keys that were set aside are not
//! reported twice (see [`Read::touches`]).

use super::error::{ConfigError, ConfigErrorKind};
use super::plain;
use super::raw::RawConfig;
use std::path::Path;

/// At most this many problems about the file's shape are reported; the file is not worth
/// reading further after that.
const MAX_SHAPE_PROBLEMS: usize = 64;

/// What reading a file gave.
pub(super) struct Read {
    /// The raw configuration with the bad keys left out; `None` when the file could not be
    /// made sense of, and only `problems` are worth reporting.
    pub(super) raw: Option<RawConfig>,
    /// Unknown keys and mistyped values.
    pub(super) problems: Vec<ConfigErrorKind>,
    /// The keys set aside or stood in for (`endpoints[0].secrets`).
    touched: Vec<String>,
}

impl Read {
    /// Whether `key` is, or is inside, a key that was set aside: what validation says about
    /// it follows from the problem already reported.
    pub(super) fn touches(&self, key: &str) -> bool {
        self.touched.iter().any(|t| {
            key.strip_prefix(t.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
        })
    }
}

/// One step of a key's path.
#[derive(Clone, Debug, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

/// Reads `path`. Only an unreadable file or broken TOML syntax is an `Err`.
pub(super) fn read(path: &Path) -> Result<Read, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigErrorKind::Read {
        file: file.clone(),
        source,
    })?;
    let mut table: toml::Table = toml::from_str(&text).map_err(|e| ConfigErrorKind::Parse {
        file: file.clone(),
        message: e.to_string().trim_end().replace('\n', "\n  "),
    })?;
    let mut read = Read {
        raw: None,
        problems: Vec::new(),
        touched: Vec::new(),
    };
    while read.problems.len() < MAX_SHAPE_PROBLEMS {
        let value = toml::Value::Table(table.clone());
        let error = match serde_path_to_error::deserialize::<_, RawConfig>(value) {
            Ok(raw) => {
                read.raw = Some(raw);
                break;
            }
            Err(e) => e,
        };
        let message = error.inner().message().to_owned();
        let mut at: Vec<Step> = Vec::new();
        for segment in error.path().iter() {
            match segment {
                serde_path_to_error::Segment::Map { key } => at.push(Step::Key(key.clone())),
                serde_path_to_error::Segment::Seq { index } => at.push(Step::Index(*index)),
                _ => break,
            }
        }
        let reached = key_text(&at);
        let Some((key, set_aside)) = set_aside(&mut table, at, &message) else {
            // Nothing to set aside: report it and stop, rather than guess.
            read.problems.push(ConfigErrorKind::Shape {
                file: file.clone(),
                key: if reached.is_empty() {
                    "(top level)".to_owned()
                } else {
                    reached
                },
                message: plain::rephrase(&message, ""),
            });
            break;
        };
        let last = key.rsplit(['.', '[']).next().unwrap_or_default().to_owned();
        let problem = ConfigErrorKind::Shape {
            file: file.clone(),
            message: plain::rephrase(&message, &last),
            key,
        };
        // Setting aside did not get past it: reading again would only say it again.
        if read
            .problems
            .iter()
            .any(|p| p.to_string() == problem.to_string())
        {
            break;
        }
        read.problems.push(problem);
        read.touched.push(set_aside);
    }
    Ok(read)
}

/// Sets aside what `message` complains about at `at`, so the next read gets past it.
/// Returns the key to report and the key set aside, or `None` when nothing could be.
fn set_aside(
    table: &mut toml::Table,
    mut at: Vec<Step>,
    message: &str,
) -> Option<(String, String)> {
    if let Some(name) = quoted_after(message, "unknown field `") {
        // The path may stop at the table or name the field too.
        if at.last() != Some(&Step::Key(name.to_owned())) {
            at.push(Step::Key(name.to_owned()));
        }
        let key = key_text(&at);
        remove(table, &at)?;
        return Some((key.clone(), key));
    }
    if let Some(name) = quoted_after(message, "missing field `") {
        // Stand in an empty string (the required keys are strings): validation then refuses
        // it, but that is not reported twice.
        let key = key_text(&at);
        table_at(table, &at)?.insert(name.to_owned(), toml::Value::String(String::new()));
        return Some((key.clone(), key));
    }
    let key = key_text(&at);
    // A bad list item sets aside the whole list, so later items keep their indexes.
    while matches!(at.last(), Some(Step::Index(_))) {
        at.pop();
    }
    remove(table, &at)?;
    Some((key, key_text(&at)))
}

/// The text between `prefix` and the next backquote.
pub(super) fn quoted_after<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = &message[message.find(prefix)? + prefix.len()..];
    rest.split('`').next()
}

/// A path as a key: `endpoints[0].forward.url`.
fn key_text(at: &[Step]) -> String {
    let mut key = String::new();
    for step in at {
        match step {
            Step::Key(k) if key.is_empty() => key.push_str(k),
            Step::Key(k) => {
                key.push('.');
                key.push_str(k);
            }
            Step::Index(i) => key.push_str(&format!("[{i}]")),
        }
    }
    key
}

/// The table at `at`, if there is one.
fn table_at<'a>(table: &'a mut toml::Table, at: &[Step]) -> Option<&'a mut toml::Table> {
    let Some((first, rest)) = at.split_first() else {
        return Some(table);
    };
    let Step::Key(k) = first else { return None };
    let mut value = table.get_mut(k)?;
    for step in rest {
        value = match (step, value) {
            (Step::Index(i), toml::Value::Array(list)) => list.get_mut(*i)?,
            (Step::Key(k), toml::Value::Table(t)) => t.get_mut(k)?,
            _ => return None,
        };
    }
    match value {
        toml::Value::Table(t) => Some(t),
        _ => None,
    }
}

/// Removes the key at `at` (which must end in a key).
fn remove(table: &mut toml::Table, at: &[Step]) -> Option<()> {
    let (Step::Key(last), parent) = at.split_last()? else {
        return None;
    };
    table_at(table, parent)?.remove(last).map(|_| ())
}

//! serde's messages about the file's shape (`unknown field`, `invalid type: ... expected
//! u32`), rephrased in one place for the person who edits the file, and "did you mean" for
//! a misspelt name.

use super::read::quoted_after;

/// The closest of `known` to `word`, when it is close enough to be a likely misspelling.
pub(super) fn did_you_mean<'a>(
    word: &str,
    known: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| (strsim::normalized_damerau_levenshtein(word, k), k))
        // Below this, the "suggestion" is more often another key than the intended one.
        .filter(|(score, _)| *score >= 0.6)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

/// serde's `message` about a value, in plain words; `field` is the last part of its key
/// (it tells what a list holds).
pub(super) fn rephrase(message: &str, field: &str) -> String {
    if let Some(name) = quoted_after(message, "unknown field `") {
        let known = backquoted(message.split_once("expected").map_or("", |(_, k)| k));
        return format!(
            "is not a key hookd knows here{}; the keys here are: {}",
            suggestion(name, &known),
            list(&known)
        );
    }
    if let Some(name) = quoted_after(message, "unknown variant `") {
        let known = backquoted(message.split_once("expected").map_or("", |(_, k)| k));
        return format!(
            "`{name}` is not one of: {}{}",
            known.join(", "),
            suggestion(name, &known)
        );
    }
    if let Some(name) = quoted_after(message, "missing field `") {
        return format!("`{name}` is missing");
    }
    for (prefix, out_of_range) in [("invalid type: ", false), ("invalid value: ", true)] {
        let Some(rest) = message.strip_prefix(prefix) else {
            continue;
        };
        let Some((found, expected)) = rest.rsplit_once(", expected ") else {
            continue;
        };
        let found = found_text(found);
        return match (out_of_range, range(expected)) {
            // The type's own bound is no help when it is astronomically large: a negative
            // number is what goes wrong there.
            (true, Some(max)) if max > u64::from(u32::MAX) => {
                format!("must be a whole number, 0 or more (it is {found})")
            }
            (true, Some(max)) => format!("must be a whole number from 0 to {max} (it is {found})"),
            _ => format!("must be {} (it is {found})", expected_text(expected, field)),
        };
    }
    message.to_owned()
}

fn suggestion(word: &str, known: &[&str]) -> String {
    did_you_mean(word, known.iter().copied())
        .map(|k| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default()
}

fn list(known: &[&str]) -> String {
    if known.is_empty() {
        return "none".to_owned();
    }
    known
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every `quoted` name in `text`.
fn backquoted(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// The largest value of an unsigned integer type serde names.
fn range(expected: &str) -> Option<u64> {
    Some(match expected {
        "u8" => u8::MAX.into(),
        "u16" => u16::MAX.into(),
        "u32" => u32::MAX.into(),
        "u64" => u64::MAX,
        "usize" => usize::MAX as u64,
        _ => return None,
    })
}

/// What serde expected, as the user would say it.
fn expected_text(expected: &str, field: &str) -> &'static str {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" | "i8" | "i16" | "i32" | "i64" => "a whole number",
        "f32" | "f64" => "a number",
        "a boolean" => "true or false",
        "a sequence" => match field {
            "retry_schedule_secs" => "a list of whole numbers",
            "endpoints" => "a list of [[endpoints]] tables",
            _ => "a list of strings",
        },
        e if e.starts_with("struct ") || e.contains("map") => "a table",
        // Strings, paths and the names of choices (`profile`) are all written as strings.
        _ => "a string",
    }
}

/// What the file has instead, from serde's `Unexpected` text (`integer `3``, `string "x"`).
fn found_text(found: &str) -> String {
    if found == "sequence" {
        return "a list".to_owned();
    }
    if found == "map" {
        return "a table".to_owned();
    }
    for kind in ["string ", "integer ", "floating point ", "boolean "] {
        if let Some(value) = found.strip_prefix(kind) {
            return value.trim_matches('`').to_owned();
        }
    }
    found.to_owned()
}

//! How a delivery query finds its rows: which index it walks (several at once for an event
//! type prefix), the search in bodies, the bounded count behind "N deliveries" or "more than
//! N", and what a duplicate repeats: its original delivery, and whether its body differs.

use super::browse::{id_bounds, type_prefix, DeliveryFilter, BODY_SCAN_BUDGET};
use super::chunks;
use super::codec::{BodyRec, DeliveryRec};
use super::event_ids::Newest;
use super::keys::{self, IndexKind};
use super::model::Verdict;
use super::{tx, Db, Result, SledStore};
use std::sync::atomic::Ordering;

/// Most keys one count walks: counting keys is cheap, but not free on a large log, and the
/// UI asks again as deliveries arrive.
const COUNT_KEYS: usize = 20_000;
/// Most records one count reads to check conditions an index does not answer.
const COUNT_READS: usize = BODY_SCAN_BUDGET;
/// Most distinct event types a type prefix is resolved to; beyond that it is matched record
/// by record instead (Fasten has seven types, most senders a few dozen).
const MAX_TYPES: usize = 500;

/// Ids a delivery query walks, newest first, each with whether the record must still be
/// read and checked against the filter (an index entry of the filter's only condition need
/// not be).
pub(super) type IdWalk = Box<dyn Iterator<Item = Result<(u64, bool)>>>;

/// How many deliveries match a filter: exactly, or at least `n` when counting stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    pub n: u64,
    pub exact: bool,
}

/// What a duplicate delivery repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Original {
    /// The delivery that was accepted for the event id.
    pub delivery_id: u64,
    /// Whether the duplicate's body is not the accepted one.
    pub body_differs: bool,
}

impl SledStore {
    /// The ids `filter` has to look at below `before`, newest first: the deliveries the
    /// indexer has not reached yet, then the entries of the most selective index that
    /// applies (merged, for a type prefix, from each known type that has it).
    pub(super) fn delivery_ids(
        &self,
        filter: &DeliveryFilter,
        before: Option<u64>,
    ) -> Result<IdWalk> {
        let (lo, hi) = id_bounds(filter.from_ms, filter.to_ms, before);
        if lo >= hi {
            return Ok(Box::new(std::iter::empty()));
        }
        let log = self.shared.h()?.log.clone();
        let indexed_below = self
            .shared
            .watermark
            .load(Ordering::Relaxed)
            .saturating_add(1);
        let conditions = filter.conditions();
        let (direct_lo, walks) = match self.index_for(&log, filter)? {
            Some((kind, values)) if lo < indexed_below => (
                indexed_below.max(lo),
                values
                    .iter()
                    .map(|v| chunks::ids(&log, kind, v, lo, hi.min(indexed_below)))
                    .collect(),
            ),
            _ => (lo, Vec::new()),
        };
        let direct = log
            .range(keys::id_range(keys::DELIVERY, direct_lo, hi.max(direct_lo)))
            .keys()
            .rev()
            .map(move |k| Ok((keys::key_id(&k.db()?).unwrap_or(0), conditions > 0)));
        let indexed = Newest::of(walks).map(move |id| Ok((id?, conditions > 1)));
        Ok(Box::new(direct.chain(indexed)))
    }

    /// The index to walk and the values to walk it for, if one applies.
    fn index_for(
        &self,
        log: &sled::Tree,
        filter: &DeliveryFilter,
    ) -> Result<Option<(IndexKind, Vec<String>)>> {
        if let Some(id) = &filter.event_id {
            return Ok(Some((IndexKind::EventId, vec![id.clone()])));
        }
        if let Some(pattern) = &filter.event_type {
            match type_prefix(pattern) {
                None => return Ok(Some((IndexKind::EventType, vec![pattern.clone()]))),
                Some(prefix) => {
                    let (types, complete) = index_values(log, IndexKind::EventType)?;
                    if complete {
                        let matching = types.into_iter().filter(|t| t.starts_with(prefix));
                        return Ok(Some((IndexKind::EventType, matching.collect())));
                    }
                }
            }
        }
        Ok(filter
            .endpoint
            .as_ref()
            .map(|e| (IndexKind::Endpoint, vec![e.clone()]))
            .or_else(|| {
                filter
                    .verdict
                    .map(|v| (IndexKind::Verdict, vec![v.as_str().to_string()]))
            }))
    }

    /// Whether a delivery record matches `filter`, its body searched when asked.
    pub(super) fn delivery_matches(
        &self,
        filter: &DeliveryFilter,
        d: &DeliveryRec,
    ) -> Result<bool> {
        if !filter.matches(d) {
            return Ok(false);
        }
        let Some(needle) = &filter.body_contains else {
            return Ok(true);
        };
        Ok(match &d.body {
            BodyRec::Inline(text) => contains_ignoring_case(text.as_bytes(), needle.as_bytes()),
            BodyRec::Payload(_) => match d.event_seq.map(|s| self.payload(s)).transpose()? {
                Some(Some(payload)) => contains_ignoring_case(&payload, needle.as_bytes()),
                _ => false,
            },
        })
    }

    /// How many deliveries match `filter`. Index keys are counted without reading their
    /// records; past a bounded walk the count is a lower bound.
    pub fn count_deliveries(&self, filter: &DeliveryFilter) -> Result<Count> {
        let mut n = 0;
        let mut read = 0;
        for (walked, item) in self.delivery_ids(filter, None)?.enumerate() {
            if walked >= COUNT_KEYS || read >= COUNT_READS {
                return Ok(Count { n, exact: false });
            }
            let (id, check) = item?;
            if !check {
                n += 1;
                continue;
            }
            read += 1;
            if let Some(d) = self.delivery_rec(id)? {
                if self.delivery_matches(filter, &d)? {
                    n += 1;
                }
            }
        }
        Ok(Count { n, exact: true })
    }

    /// The event types seen so far (as indexed), sorted; at most a bounded number.
    pub fn event_types(&self) -> Result<Vec<String>> {
        Ok(index_values(&self.shared.h()?.log, IndexKind::EventType)?.0)
    }

    /// For a duplicate delivery whose event is still stored: the delivery that was accepted
    /// for its event id, and whether the bodies differ.
    pub fn original(&self, id: u64) -> Result<Option<Original>> {
        let Some(d) = self.delivery_rec(id)? else {
            return Ok(None);
        };
        let Some(seq) = d.event_seq.filter(|_| d.verdict == Verdict::Duplicate) else {
            return Ok(None);
        };
        let h = self.shared.h()?;
        let Some((event, payload)) = tx::event_of(&tx::Tx::new(&h.log), seq)? else {
            return Ok(None);
        };
        Ok(Some(Original {
            delivery_id: event.delivery_id,
            body_differs: !same_body(&d, &payload),
        }))
    }

    /// A delivery's whole body when hookd has it although the log kept only its start: the
    /// payload of the event it was accepted as, or repeated unchanged.
    pub fn full_body(&self, id: u64) -> Result<Option<bytes::Bytes>> {
        let Some(d) = self.delivery_rec(id)? else {
            return Ok(None);
        };
        let Some(seq) = d.event_seq else {
            return Ok(None);
        };
        let h = self.shared.h()?;
        Ok(match tx::event_of(&tx::Tx::new(&h.log), seq)? {
            Some((event, payload))
                if event.delivery_id == id
                    || (d.verdict == Verdict::Duplicate && same_body(&d, &payload)) =>
            {
                Some(payload)
            }
            _ => None,
        })
    }
}

/// Whether a delivery's body is `payload`. The writer points a body at the payload only when
/// the bytes are the same (and keeps it inline otherwise), except where the logged text is
/// not a byte prefix of the payload (invalid UTF-8, replaced): compare the text then.
fn same_body(d: &DeliveryRec, payload: &[u8]) -> bool {
    if d.body_bytes as usize != payload.len() {
        return false;
    }
    match &d.body {
        BodyRec::Payload(_) => true,
        BodyRec::Inline(text) => {
            !payload.starts_with(text.as_bytes())
                && String::from_utf8_lossy(payload).starts_with(text.as_str())
        }
    }
}

fn contains_ignoring_case(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || haystack
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

/// The distinct values of an index, in key order, by jumping from each value past all of
/// its entries: one seek per value, however many deliveries each has. `false` when there
/// were more than [`MAX_TYPES`].
fn index_values(log: &sled::Tree, kind: IndexKind) -> Result<(Vec<String>, bool)> {
    // Chunk keys are laid out as entries are: the value, then an id.
    let marker = if chunks::KINDS.contains(&kind) {
        keys::CHUNK
    } else {
        keys::INDEX
    };
    let end = [marker, kind as u8 + 1];
    let mut from = vec![marker, kind as u8];
    let mut values = Vec::new();
    while let Some(key) = log.range(from.clone()..end.to_vec()).keys().next() {
        let key = key.db()?;
        let Some(value) = keys::index_key_value(&key) else {
            break;
        };
        if values.len() == MAX_TYPES {
            return Ok((values, false));
        }
        values.push(String::from_utf8_lossy(value).into_owned());
        // Past the largest id under this value.
        from = key[..key.len() - 8].to_vec();
        from.extend_from_slice(&[0xff; 9]);
    }
    Ok((values, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_search_ignores_ascii_case() {
        assert!(contains_ignoring_case(
            b"{\"Name\":\"Ada\"}",
            b"name\":\"ada"
        ));
        assert!(!contains_ignoring_case(b"short", b"longer than it"));
        assert!(contains_ignoring_case(b"", b""));
    }
}

//! `GET /api/stats` (counts, queue, store and retention status) and `GET /api/chart`
//! (deliveries per minute or hour by verdict, over a chosen range): what the queue view draws.

use super::query;
use super::{Admin, ApiError};
use crate::clock;
use crate::store::HourCounts;
use serde_json::{json, Value};
use std::collections::HashMap;

/// Longest chart the API draws, in hours (90 days).
const MAX_CHART_HOURS: u64 = 90 * 24;

/// Counts by verdict and state, the queue, store and data directory sizes, the pruner.
pub fn stats(admin: &Admin) -> Result<Value, ApiError> {
    let stats = admin.store.stats(clock::now_ms())?;
    let mut value = serde_json::to_value(stats).unwrap_or(Value::Null);
    value["retention"] = serde_json::to_value(admin.pruner.status()).unwrap_or(Value::Null);
    value["data_dir_bytes"] = json!(admin.data_dir_bytes());
    Ok(value)
}

/// A minute and an hour in ms.
const MINUTE_MS: u64 = 60_000;
const HOUR_MS: u64 = 3_600_000;

/// The named chart ranges: name, number of buckets, bucket length. Each keeps the bars few
/// enough to read: minutes for the last hour, hours beyond.
const RANGES: [(&str, u64, u64); 3] = [
    ("hour", 60, MINUTE_MS),
    ("day", 24, HOUR_MS),
    ("15d", 15 * 24, HOUR_MS),
];

/// Deliveries by verdict per bucket: `range=hour` (per minute), `day` or `15d` (per hour),
/// or `hours=N` per hour; by default per hour over the retention window.
pub fn chart(admin: &Admin, query: &str) -> Result<Value, ApiError> {
    let q = query::parse(query);
    let (name, buckets, bucket_ms) = match query::text(&q, "range") {
        Some(r) => RANGES
            .into_iter()
            .find(|(name, _, _)| *name == r)
            .ok_or_else(|| ApiError::bad_request("`range` must be hour, day or 15d"))?,
        None => {
            let hours = query::number(&q, "hours")?
                .unwrap_or(u64::from(admin.config.retention_days) * 24)
                .clamp(1, MAX_CHART_HOURS);
            ("hours", hours, HOUR_MS)
        }
    };
    let now_bucket = clock::now_ms() / bucket_ms;
    let first = now_bucket.saturating_sub(buckets - 1);
    let counts = if bucket_ms == HOUR_MS {
        let mut cache = admin.chart.lock().unwrap_or_else(|e| e.into_inner());
        hour_counts(admin, &mut cache, first, now_bucket)?
    } else {
        // Minutes of the last hour: few and recent, counted afresh each time.
        admin
            .store
            .bucket_counts(first * bucket_ms, bucket_ms, now_bucket - first + 1)?
    };
    let rows: Vec<Value> = counts
        .iter()
        .zip(first..)
        .map(|(c, b)| {
            json!({
                "start_ms": b * bucket_ms,
                "accepted": c[0], "duplicate": c[1], "filtered": c[2], "rejected": c[3],
            })
        })
        .collect();
    Ok(json!({
        "range": name,
        "bucket_ms": bucket_ms,
        "from_ms": first * bucket_ms,
        "buckets": rows,
    }))
}

/// The counts of each hour from `from_hour` to `now_hour`: finished hours from the cache
/// where it has them, the rest (and the running hour, never cached) from the store.
fn hour_counts(
    admin: &Admin,
    cache: &mut HashMap<u64, HourCounts>,
    from_hour: u64,
    now_hour: u64,
) -> Result<Vec<HourCounts>, ApiError> {
    cache.retain(|h, _| *h >= from_hour);
    let first_missing = (from_hour..now_hour)
        .find(|h| !cache.contains_key(h))
        .unwrap_or(now_hour);
    let fresh = admin.store.hourly_counts(first_missing, now_hour)?;
    for (h, c) in (first_missing..now_hour).zip(&fresh) {
        cache.insert(h, *c);
    }
    Ok((from_hour..=now_hour)
        .map(|h| {
            if h >= first_missing {
                fresh
                    .get((h - first_missing) as usize)
                    .copied()
                    .unwrap_or_default()
            } else {
                cache.get(&h).copied().unwrap_or_default()
            }
        })
        .collect())
}

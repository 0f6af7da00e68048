//! `GET /api/stats` (counts, queue, store and retention status) and `GET /api/chart`
//! (deliveries per hour by verdict): what the queue view draws.

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

/// Deliveries per hour by verdict over the last `hours` hours (default: the retention window).
pub fn chart(admin: &Admin, query: &str) -> Result<Value, ApiError> {
    let q = query::parse(query);
    let hours = query::number(&q, "hours")?
        .unwrap_or(u64::from(admin.config.retention_days) * 24)
        .clamp(1, MAX_CHART_HOURS);
    let now_hour = clock::now_ms() / 3_600_000;
    let from_hour = now_hour.saturating_sub(hours - 1);
    let counts = {
        let mut cache = admin.chart.lock().unwrap_or_else(|e| e.into_inner());
        hour_counts(admin, &mut cache, from_hour, now_hour)?
    };
    let hours: Vec<Value> = counts
        .iter()
        .zip(from_hour..)
        .map(|(c, h)| {
            json!({
                "hour_ms": h * 3_600_000,
                "accepted": c[0], "duplicate": c[1], "filtered": c[2], "rejected": c[3],
            })
        })
        .collect();
    Ok(json!({ "from_ms": from_hour * 3_600_000, "hours": hours }))
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

//! `patient.ehi_export_success`: plan the download (check the ids and every link before
//! fetching any), download each file, record the export with its counts compared against the
//! event's stats, and describe what was stored in the attempt record.

use super::download::{check_url, Target};
use super::events::{ExportSuccess, Stats};
use super::{checked, permanent, retry, store_err, FastenProcessor};
use crate::clock;
use crate::process::{Job, ProcessError};
use crate::store::fasten::{ExportFile, ExportRecord};
use crate::store::safe_name;
use reqwest::Url;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The files of one export and where they go.
struct Plan {
    conn: String,
    task: String,
    dir: PathBuf,
    /// Each link with the name its file is stored under (without `.ndjson`).
    links: Vec<(Url, String)>,
}

/// What planning found.
enum Planned {
    /// This event already stored the export (the record); the text says so.
    Done(String, Box<ExportRecord>),
    /// The connection was revoked at this time (ms): nothing is fetched.
    Revoked {
        conn: String,
        task: String,
        at: u64,
    },
    Fetch(Plan),
}

/// How the detail of an attempt that did nothing because its connection is revoked begins
/// (its attempt ends done): the admin API tells a skipped export by it.
pub const REVOKED: &str = "connection revoked:";

/// The attempt's account of an export not stored because its connection is revoked.
fn revoked_text(conn: &str, task: &str, at: u64, what: &str) -> String {
    format!(
        "{REVOKED} export {task} of connection {conn} {what}. It was revoked at \
         {}; a newer patient.connection_success authorizes it again",
        crate::clock::utc_text(at)
    )
}

impl FastenProcessor {
    /// Downloads, validates, stores and indexes every file of the export.
    pub(super) async fn export_success(
        &self,
        job: &Job,
        data: &ExportSuccess,
    ) -> Result<String, ProcessError> {
        let plan = match self.plan(job, data)? {
            Planned::Done(text, record) => {
                // An attempt cut short after storing may not have queued its push yet.
                self.push_export(job, &record).await?;
                return Ok(text);
            }
            Planned::Revoked { conn, task, at } => {
                return self.refuse_revoked(&conn, &task, at).await
            }
            Planned::Fetch(plan) => plan,
        };
        let mut notes = Vec::new();
        let downloaded = self.download_all(&plan, &mut notes).await;
        // A revocation may have landed during the download (see `commits`): checked again,
        // under the lock, before anything is recorded. A download that failed because the
        // revocation removed its directory ends here too, rather than being retried.
        let _commits = self.commits.lock().await;
        if let Some(at) = self.revoked_at(&plan.conn)? {
            let entries = self.discard_export(&plan.conn, &plan.task).await?;
            let what = format!(
                "is not stored: the revocation came while it downloaded, and what was \
                 downloaded is removed with its {entries} index entries"
            );
            return Ok(revoked_text(&plan.conn, &plan.task, at, &what));
        }
        let record = self
            .record(job, &plan, downloaded?, data.stats.as_ref())
            .await?;
        notes.push(check_text(&record, data.stats.is_some()));
        if self.push.is_some() {
            self.push_export(job, &record).await?;
            notes.push(format!("{} queued", crate::process::push::EXPORT_STORED));
        }
        Ok(describe(&record, &notes))
    }

    /// Ends an export of a revoked connection without fetching it. What an earlier attempt
    /// cut short left behind (index entries, files) goes; an export stored before the
    /// revocation and kept (`on_revoke = "keep"`) stays.
    async fn refuse_revoked(
        &self,
        conn: &str,
        task: &str,
        at: u64,
    ) -> Result<String, ProcessError> {
        let _commits = self.commits.lock().await;
        let mut what = "is not downloaded".to_string();
        if self.store.export(conn, task).map_err(store_err)?.is_none() {
            let entries = self.discard_export(conn, task).await?;
            if entries > 0 {
                what.push_str(&format!(
                    "; {entries} index entries an earlier attempt left are removed"
                ));
            }
        }
        Ok(revoked_text(conn, task, at, &what))
    }

    fn plan(&self, job: &Job, data: &ExportSuccess) -> Result<Planned, ProcessError> {
        let conn = checked(
            data.org_connection_id
                .as_deref()
                .ok_or_else(|| permanent("data.org_connection_id is missing"))?,
            "org_connection_id",
        )?;
        let task = checked(
            data.task_id
                .as_deref()
                .ok_or_else(|| permanent("data.task_id is missing"))?,
            "task_id",
        )?;
        // Before anything else, a replay of an export stored earlier included.
        if let Some(at) = self.revoked_at(&conn)? {
            return Ok(Planned::Revoked { conn, task, at });
        }
        let urls = data.urls();
        if urls.is_empty() {
            return Err(permanent(
                "data has neither download_links[] nor download_link",
            ));
        }
        let dir = self.files.task_dir(&conn, &task);
        if let Some(done) = self.store.export(&conn, &task).map_err(store_err)? {
            let names = done.files.iter().map(|f| f.name.as_str());
            let present = self.files.has_all(&conn, &task, names);
            if done.event_id == job.event.event_id && present {
                return Ok(Planned::Done(
                    format!(
                        "export {task} of connection {conn} was already stored by this event ({} files)",
                        done.files.len()
                    ),
                    Box::new(done),
                ));
            }
        }
        // Check every link before fetching any, so a refused host fails the event at once.
        let mut links = Vec::new();
        for raw in &urls {
            let url = Url::parse(raw)
                .map_err(|e| permanent(format!("download link `{raw}` is not a URL: {e}")))?;
            check_url(&self.config, &url)?;
            let name = file_stem(&url)?;
            if links.iter().any(|(_, n): &(Url, String)| *n == name) {
                return Err(permanent(format!(
                    "two download links name the file `{name}`"
                )));
            }
            links.push((url, name));
        }
        Ok(Planned::Fetch(Plan {
            conn,
            task,
            dir,
            links,
        }))
    }

    /// Downloads the planned files in turn, within `fasten.max_export_bytes` for them all.
    async fn download_all(
        &self,
        plan: &Plan,
        notes: &mut Vec<String>,
    ) -> Result<Vec<ExportFile>, ProcessError> {
        tokio::fs::create_dir_all(&plan.dir)
            .await
            .map_err(|e| retry(format!("cannot create {}: {e}", plan.dir.display())))?;
        let mut files = Vec::new();
        let mut budget = self.config.max_export_bytes;
        for (url, stem) in &plan.links {
            let target = Target {
                dir: plan.dir.clone(),
                name: format!("{stem}.ndjson"),
                connection: plan.conn.clone(),
                task: plan.task.clone(),
            };
            let file = self.download(url, target, budget, notes).await?;
            budget = budget.saturating_sub(file.bytes);
            files.push(file);
        }
        Ok(files)
    }

    /// Stores the export record (which makes the export visible) with its totals.
    async fn record(
        &self,
        job: &Job,
        plan: &Plan,
        files: Vec<ExportFile>,
        stats: Option<&Stats>,
    ) -> Result<ExportRecord, ProcessError> {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for f in &files {
            for (t, n) in &f.counts {
                *counts.entry(t.clone()).or_default() += n;
            }
        }
        let total: u64 = counts.values().sum();
        let record = ExportRecord {
            org_connection_id: plan.conn.clone(),
            task_id: plan.task.clone(),
            event_id: job.event.event_id.clone(),
            stored_at_ms: clock::now_ms(),
            files,
            total_resources: total,
            mismatches: compare_stats(stats, total, &counts),
            counts,
        };
        self.store
            .update_connection(&plan.conn, |c| {
                c.seen(&job.event.endpoint, record.stored_at_ms);
            })
            .map_err(store_err)?;
        self.store.put_export(&record).await.map_err(store_err)?;
        Ok(record)
    }
}

/// How the stored counts compare with the event's stats; a mismatch is also logged.
fn check_text(record: &ExportRecord, has_stats: bool) -> String {
    if record.mismatches.is_empty() {
        return if has_stats {
            "counts match stats".to_string()
        } else {
            "no stats in the event to compare with".to_string()
        };
    }
    tracing::warn!(
        connection = %record.org_connection_id,
        task = %record.task_id,
        mismatches = %record.mismatches.join("; "),
        "stored export differs from the stats of its event"
    );
    format!(
        "WARNING: counts differ from stats: {}",
        record.mismatches.join("; ")
    )
}

/// The attempt's one-line account of a stored export.
fn describe(record: &ExportRecord, notes: &[String]) -> String {
    let bytes: u64 = record.files.iter().map(|f| f.bytes).sum();
    let file_list: Vec<String> = record
        .files
        .iter()
        .map(|f| {
            format!(
                "{} ({} bytes, {} resources, sha256 {})",
                f.name, f.bytes, f.resources, f.sha256
            )
        })
        .collect();
    let counts_text: Vec<String> = record
        .counts
        .iter()
        .map(|(t, n)| format!("{t} {n}"))
        .collect();
    format!(
        "stored export {} of connection {}: {}, {} resources, {bytes} bytes: {}; counts: {}; {}",
        record.task_id,
        record.org_connection_id,
        crate::text::count(record.files.len() as u64, "file", "files"),
        record.total_resources,
        file_list.join(", "),
        counts_text.join(", "),
        notes.join("; ")
    )
}

/// The file name a link is stored under: its last path segment without the extension.
fn file_stem(url: &Url) -> Result<String, ProcessError> {
    let last = url
        .path_segments()
        .and_then(|mut s| s.next_back())
        .unwrap_or("");
    let stem = [".jsonl", ".ndjson", ".json"]
        .iter()
        .find_map(|ext| last.strip_suffix(ext))
        .unwrap_or(last);
    if safe_name(stem) {
        Ok(stem.to_string())
    } else {
        Err(permanent(format!(
            "download link {url}: `{last}` is not a usable file name"
        )))
    }
}

/// Where the stored counts differ from the event's stats.
fn compare_stats(stats: Option<&Stats>, total: u64, counts: &BTreeMap<String, u64>) -> Vec<String> {
    let Some(s) = stats else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(expected) = s.total_resources {
        if expected != total {
            out.push(format!(
                "total_resources: stats say {expected}, stored {total}"
            ));
        }
    }
    for (t, expected) in &s.total_by_resource_type {
        let got = counts.get(t).copied().unwrap_or(0);
        if got != *expected {
            out.push(format!("{t}: stats say {expected}, stored {got}"));
        }
    }
    for (t, got) in counts {
        if !s.total_by_resource_type.is_empty() && !s.total_by_resource_type.contains_key(t) {
            out.push(format!("{t}: not in stats, stored {got}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_stem_strips_the_extension() {
        let u = Url::parse("https://h/v1/bridge/fhir/ehi-export/t/download/abc.jsonl").unwrap();
        assert_eq!(file_stem(&u).unwrap(), "abc");
        let u = Url::parse("https://h/x/..%2Fetc").unwrap();
        assert!(file_stem(&u).is_err());
    }

    #[test]
    fn stats_mismatches_are_listed() {
        let stats = Stats {
            total_resources: Some(3),
            total_by_resource_type: [("Patient".to_string(), 1), ("Observation".to_string(), 2)]
                .into_iter()
                .collect(),
        };
        let counts: BTreeMap<String, u64> =
            [("Patient".to_string(), 1), ("Observation".to_string(), 2)]
                .into_iter()
                .collect();
        assert!(compare_stats(Some(&stats), 3, &counts).is_empty());
        let counts: BTreeMap<String, u64> =
            [("Patient".to_string(), 1), ("Condition".to_string(), 1)]
                .into_iter()
                .collect();
        let m = compare_stats(Some(&stats), 2, &counts);
        assert_eq!(m.len(), 3, "{m:?}");
    }
}

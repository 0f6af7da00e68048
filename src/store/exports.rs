//! Where the Fasten export files live: `<data_dir>/exports/<connection>/<task>/<file>.ndjson`.
//!
//! One owner for that layout. The Fasten processor stores and removes exports through it,
//! the admin API finds files through it, the pruner ages exports out through it, and backup
//! copies the directory it names. The records and resource index entries that point into
//! these files are the store's (`store::fasten`); the order between the two (records go
//! first, so nothing ever points at a missing file) is the callers', who know why they
//! remove.
//!
//! Every name that reaches a path here is a [`safe_name`], so no event can name a path
//! outside the exports directory.

use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The exports directory's name inside the data directory.
pub const DIR: &str = "exports";

/// Whether `s` can be used as a file name and a store key: 1-128 of `[A-Za-z0-9._-]`, not
/// starting with '.'. Ids from events are checked with it before they name a path.
pub fn safe_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The export files of one data directory.
#[derive(Clone, Debug)]
pub struct ExportFiles {
    root: PathBuf,
}

/// An export old enough to go, found by [`ExportFiles::aged`].
#[derive(Debug, PartialEq, Eq)]
pub enum Aged {
    /// `exports/<connection>/<task>`.
    Task { connection: String, task: String },
    /// A file directly under `exports/` (a temporary file left by a crash, say).
    Stray(PathBuf),
}

impl ExportFiles {
    /// The export files of the data directory `data_dir`.
    pub fn new(data_dir: &Path) -> ExportFiles {
        ExportFiles::at(&data_dir.join(DIR))
    }

    /// The export files under `root` (`fasten.exports_dir`).
    pub fn at(root: &Path) -> ExportFiles {
        ExportFiles {
            root: root.to_path_buf(),
        }
    }

    /// The directory of one connection's exports.
    pub fn connection_dir(&self, connection: &str) -> PathBuf {
        self.root.join(connection)
    }

    /// The directory of one export.
    pub fn task_dir(&self, connection: &str, task: &str) -> PathBuf {
        self.connection_dir(connection).join(task)
    }

    /// One stored file of an export.
    pub fn file(&self, connection: &str, task: &str, name: &str) -> PathBuf {
        self.task_dir(connection, task).join(name)
    }

    /// Whether every one of `names` is stored for the export.
    pub fn has_all<'a>(
        &self,
        connection: &str,
        task: &str,
        mut names: impl Iterator<Item = &'a str>,
    ) -> bool {
        let dir = self.task_dir(connection, task);
        names.all(|n| dir.join(n).is_file())
    }

    /// Removes a connection's files; a connection with none is fine.
    pub async fn remove_connection(&self, connection: &str) -> io::Result<()> {
        remove_all(&self.connection_dir(connection)).await
    }

    /// Removes one export's files, then the connection's directory if nothing else is in
    /// it (its other, kept exports stay). Returns whether the export had files.
    pub async fn remove_task(&self, connection: &str, task: &str) -> io::Result<bool> {
        let dir = self.task_dir(connection, task);
        let had = tokio::fs::try_exists(&dir).await.unwrap_or(true);
        remove_all(&dir).await?;
        let _ = tokio::fs::remove_dir(self.connection_dir(connection)).await;
        Ok(had)
    }

    /// The exports (and stray files) last modified before `cutoff`. A missing or unreadable
    /// exports directory has none.
    pub fn aged(&self, cutoff: SystemTime) -> Vec<Aged> {
        let old = |path: &Path| {
            std::fs::metadata(path)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < cutoff)
        };
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_dir() {
                if old(&path) {
                    out.push(Aged::Stray(path));
                }
                continue;
            }
            let connection = entry.file_name().to_string_lossy().into_owned();
            let Ok(tasks) = std::fs::read_dir(&path) else {
                continue;
            };
            for task in tasks.flatten() {
                if old(&task.path()) {
                    out.push(Aged::Task {
                        connection: connection.clone(),
                        task: task.file_name().to_string_lossy().into_owned(),
                    });
                }
            }
        }
        out
    }

    /// Removes what [`ExportFiles::aged`] found (blocking; the pruner runs off the runtime),
    /// and a connection directory left empty by it.
    pub fn remove_aged(&self, aged: &Aged) -> io::Result<()> {
        match aged {
            Aged::Stray(path) => std::fs::remove_file(path),
            Aged::Task { connection, task } => {
                let path = self.task_dir(connection, task);
                let gone = if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                // Fails harmlessly while the connection has other exports.
                let _ = std::fs::remove_dir(self.connection_dir(connection));
                gone
            }
        }
    }
}

/// Removes `dir` and everything in it; a missing one is fine.
async fn remove_all(dir: &Path) -> io::Result<()> {
    match tokio::fs::remove_dir_all(dir).await {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn unsafe_names_are_refused() {
        assert!(safe_name("conn_1-a.b"));
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "a\\b",
            "a b",
            "é",
            &"x".repeat(129),
        ] {
            assert!(!safe_name(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn tasks_age_out_and_an_emptied_connection_goes_with_them() {
        let data = tempfile::tempdir().unwrap();
        let files = ExportFiles::new(data.path());
        for (conn, task) in [("c1", "t1"), ("c1", "t2"), ("c2", "t3")] {
            std::fs::create_dir_all(files.task_dir(conn, task)).unwrap();
            std::fs::write(files.file(conn, task, "Patient.ndjson"), "{}\n").unwrap();
        }
        std::fs::write(data.path().join(DIR).join("stray.tmp"), "x").unwrap();
        assert!(files.has_all("c1", "t1", ["Patient.ndjson"].into_iter()));
        assert!(!files.has_all("c1", "t1", ["Patient.ndjson", "Other.ndjson"].into_iter()));

        // Nothing is older than a cutoff in the past.
        let past = SystemTime::now() - Duration::from_secs(3600);
        assert!(files.aged(past).is_empty());

        let future = SystemTime::now() + Duration::from_secs(3600);
        let mut aged = files.aged(future);
        aged.sort_by_key(|a| format!("{a:?}"));
        assert_eq!(aged.len(), 4, "{aged:?}");
        for a in &aged {
            files.remove_aged(a).unwrap();
        }
        assert!(!files.connection_dir("c1").exists());
        assert!(!files.connection_dir("c2").exists());
        assert!(!data.path().join(DIR).join("stray.tmp").exists());
    }

    #[tokio::test]
    async fn removing_a_task_keeps_the_connections_other_exports() {
        let data = tempfile::tempdir().unwrap();
        let files = ExportFiles::new(data.path());
        for task in ["t1", "t2"] {
            std::fs::create_dir_all(files.task_dir("c", task)).unwrap();
        }
        assert!(files.remove_task("c", "t1").await.unwrap());
        assert!(files.task_dir("c", "t2").is_dir());
        assert!(!files.remove_task("c", "t1").await.unwrap(), "already gone");
        assert!(files.remove_task("c", "t2").await.unwrap());
        assert!(!files.connection_dir("c").exists());
        files.remove_connection("never-seen").await.unwrap();
    }
}

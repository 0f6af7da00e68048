//! Web UI sessions of the embedded store: in memory only. A restart logs everyone out, which
//! is the safe direction, and a session never reaches a backup. (Cluster mode keeps them in
//! the database instead, so a user stays logged in whichever instance answers: `pg::sessions`.)

use super::{Result, SledStore};
use std::collections::HashMap;
use std::sync::Mutex;

/// Sessions kept at most; the oldest are dropped first, so a flood of logins cannot grow
/// memory.
const MAX_SESSIONS: usize = 1024;

/// The live sessions: id → (CSRF token, expiry in ms since the epoch).
#[derive(Default)]
pub(super) struct Sessions(Mutex<HashMap<String, (String, u64)>>);

impl Sessions {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, u64)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl SledStore {
    /// Keeps a new session, dropping expired ones (and the oldest, at the cap).
    pub fn put_session(&self, id: &str, csrf: &str, expires_at_ms: u64) -> Result<()> {
        let mut sessions = self.sessions.map();
        let now_ms = crate::clock::now_ms();
        sessions.retain(|_, (_, expires)| *expires > now_ms);
        if sessions.len() >= MAX_SESSIONS {
            if let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, (_, expires))| *expires)
                .map(|(k, _)| k.clone())
            {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(id.to_owned(), (csrf.to_owned(), expires_at_ms));
        Ok(())
    }

    /// The CSRF token of session `id`, while it lives.
    pub fn session(&self, id: &str, now_ms: u64) -> Result<Option<String>> {
        let mut sessions = self.sessions.map();
        match sessions.get(id) {
            Some((csrf, expires)) if *expires > now_ms => Ok(Some(csrf.clone())),
            Some(_) => {
                sessions.remove(id);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    /// Ends session `id`.
    pub fn remove_session(&self, id: &str) -> Result<()> {
        self.sessions.map().remove(id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_the_oldest_give_way_at_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(&dir.path().join("db"), 16).unwrap();
        let now = crate::clock::now_ms();
        store.put_session("a", "csrf-a", now + 1_000).unwrap();
        assert_eq!(store.session("a", now).unwrap().as_deref(), Some("csrf-a"));
        assert_eq!(store.session("a", now + 1_000).unwrap(), None, "expired");
        store.put_session("b", "csrf-b", now + 60_000).unwrap();
        store.remove_session("b").unwrap();
        assert_eq!(store.session("b", now).unwrap(), None, "logged out");
        store.put_session("first", "x", now + 10_000).unwrap();
        for i in 0..MAX_SESSIONS {
            store
                .put_session(&format!("s{i}"), "x", now + 20_000 + i as u64)
                .unwrap();
        }
        assert_eq!(store.sessions.map().len(), MAX_SESSIONS);
        assert_eq!(
            store.session("first", now).unwrap(),
            None,
            "the oldest went"
        );
        assert!(store.session("s0", now).unwrap().is_some());
    }
}

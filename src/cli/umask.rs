//! Private file modes for everything hookd writes.
//!
//! The data directory holds health records, signing secrets and the delivery log. Under the
//! packaged unit `UMask=0077` keeps them private, but run any other way (`cargo run`, a
//! container, a shell with umask 022) the store and exported records would come out 0644 and
//! the directories 0755. Setting the umask once, before anything is created, covers every
//! file hookd or its libraries (sled, the export writer, backups) create, without each
//! creation site having to remember a mode.

/// Files 0600 and directories 0700, whatever umask hookd was started with.
pub fn make_private() {
    // SAFETY: umask only replaces the process's file-mode creation mask; it cannot fail and
    // touches no memory. It runs before the runtime starts any thread.
    unsafe {
        libc::umask(0o077);
    }
}

//! Thread priorities. On Linux the nice value belongs to the thread, so one thread can give
//! way to the rest of the process without changing anyone else's. Elsewhere (macOS, where
//! hookd builds for development) the threads run at the process's priority.

use std::thread::JoinHandle;

/// Spawns `f` on a thread named `name` whose nice value is `by` above its creator's (the
/// kernel caps it at 19). Raising a nice value needs no privilege; should it fail anyway,
/// or the current value be unknown, the thread runs at its creator's priority and the
/// reason is logged at debug level. Threads the new thread creates inherit its value
/// (sled's IO pool adds threads from whichever thread hands it work: a few may run at the
/// writer's or the prune's priority until they idle out).
pub fn spawn<T: Send + 'static>(
    name: &str,
    by: i32,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<JoinHandle<T>> {
    let thread = name.to_string();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            if let Err(error) = lower_this_thread(by) {
                tracing::debug!(%error, thread, "could not lower the thread's priority");
            }
            f()
        })
}

#[cfg(target_os = "linux")]
fn lower_this_thread(by: i32) -> std::io::Result<()> {
    let now = of_this_thread()?;
    // SAFETY: setpriority has no memory effects; 0 names the calling thread.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, now.saturating_add(by.max(0))) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn lower_this_thread(_by: i32) -> std::io::Result<()> {
    Ok(())
}

/// The calling thread's nice value.
#[cfg(target_os = "linux")]
pub fn of_this_thread() -> std::io::Result<i32> {
    // SAFETY: getpriority only reads. -1 is a valid answer, so errno (cleared first) tells
    // a failure from it.
    unsafe {
        *libc::__errno_location() = 0;
        let nice = libc::getpriority(libc::PRIO_PROCESS, 0);
        if nice == -1 && *libc::__errno_location() != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(nice)
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_spawned_thread_runs_that_much_nicer_and_its_creator_is_unchanged() {
        let before = of_this_thread().unwrap();
        let inside = spawn("test-nice", 3, of_this_thread)
            .unwrap()
            .join()
            .unwrap()
            .unwrap();
        assert_eq!(inside, (before + 3).min(19));
        assert_eq!(
            of_this_thread().unwrap(),
            before,
            "the creator's is unchanged"
        );
        let lowest = spawn("test-nice", 40, of_this_thread);
        assert_eq!(lowest.unwrap().join().unwrap().unwrap(), 19, "capped at 19");
    }
}

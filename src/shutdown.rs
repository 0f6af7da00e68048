//! One shutdown signal shared by every task (a watch channel that flips to `true` once), and
//! the operating-system signals that fire it.

use tokio::sync::watch;

/// Sends the shutdown signal.
#[derive(Clone)]
pub struct Trigger(watch::Sender<bool>);

/// Waits for the shutdown signal; cheap to clone into every task.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// A connected trigger and listener.
pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Shutdown(rx))
}

impl Trigger {
    /// Tells every listener to stop.
    pub fn fire(&self) {
        self.0.send_replace(true);
    }
}

impl Shutdown {
    /// Resolves once the trigger has fired (at once if it already has, or if it was dropped).
    pub async fn wait(mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    /// Whether the trigger has fired.
    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }
}

/// SIGTERM and SIGINT, caught from the moment [`Signals::install`] returns: installed before
/// the listeners bind, so a stop that arrives while hookd starts is a graceful one too.
pub struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Replaces the default (terminate at once) disposition of SIGTERM and SIGINT.
    /// Must run inside the Tokio runtime.
    pub fn install() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let term = signal(SignalKind::terminate());
            let int = signal(SignalKind::interrupt());
            if let Err(e) = &term {
                tracing::warn!(error = %e, "cannot catch SIGTERM");
            }
            Signals {
                term: term.ok(),
                int: int.ok(),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// Resolves at the first stop signal (at once if one arrived since `install`).
    pub async fn recv(self) {
        #[cfg(unix)]
        {
            let (mut term, mut int) = (self.term, self.int);
            tokio::select! {
                Some(()) = async { term.as_mut()?.recv().await } => {}
                Some(()) = async { int.as_mut()?.recv().await } => {}
                else => { let _ = tokio::signal::ctrl_c().await; }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("stop signal received");
    }
}

//! One shutdown signal shared by every task: a watch channel that flips to `true` once.

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

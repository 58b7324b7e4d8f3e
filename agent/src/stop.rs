//! The stop signal: SIGTERM (or the end of a drain) reaches the reading thread, which checks a
//! flag every turn, and the async tasks, which wait on it without polling.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed, Ordering::SeqCst};

/// A request to stop: a flag the reading thread checks every turn, and a wake-up for tasks
/// (so nothing polls for it).
#[derive(Default)]
pub struct Stop {
    flag: AtomicBool,
    wake: tokio::sync::Notify,
}

impl Stop {
    pub fn request(&self) {
        self.flag.store(true, SeqCst);
        self.wake.notify_waiters();
    }

    pub fn requested(&self) -> bool {
        self.flag.load(Relaxed)
    }

    pub async fn wait(&self) {
        let woken = self.wake.notified();
        tokio::pin!(woken);
        // Registered before the check: a request between the two still wakes us.
        woken.as_mut().enable();
        if !self.requested() {
            woken.await;
        }
    }
}

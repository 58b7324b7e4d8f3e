//! The one backoff policy of the agent, for every loop that waits for something to come back
//! (the store, a spool that cannot be written, an accept out of descriptors): the wait doubles
//! from a start up to a cap, and each wait gets up to half of itself again at random, so that
//! agents on many nodes that lost the store together do not all come back in step.
//!
//! What a loop does between tries (count, log once, give up at the end of the shutdown grace)
//! stays with the loop; how long it waits is decided here.

use std::time::Duration;

/// The waits of one retry loop.
#[derive(Clone, Debug)]
pub struct Backoff {
    start: Duration,
    cap: Duration,
    next: Duration,
}

/// Store writes: a quarter second first, then doubling.
pub const STORE_START: Duration = Duration::from_millis(250);

impl Backoff {
    pub const fn new(start: Duration, cap: Duration) -> Backoff {
        Backoff {
            start,
            cap,
            next: start,
        }
    }

    /// How long to wait before the next try: the current delay plus its jitter. The delay then
    /// doubles, up to the cap.
    pub fn next_wait(&mut self) -> Duration {
        let delay = self.next;
        self.next = (delay * 2).min(self.cap);
        delay + jitter(delay)
    }

    /// A try succeeded: the next failure waits the shortest again.
    pub fn reset(&mut self) {
        self.next = self.start;
    }
}

/// Up to half of `d`, from the clock's nanoseconds: spread enough to break lockstep between
/// nodes, without a random number generator.
fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    d.mul_f64((nanos % 1000) as f64 / 2000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_with_at_most_half_again_of_jitter() {
        let start = Duration::from_millis(100);
        let cap = Duration::from_millis(700);
        let mut b = Backoff::new(start, cap);
        let delays = [100, 200, 400, 700, 700].map(Duration::from_millis);
        for delay in delays {
            let wait = b.next_wait();
            assert!(
                wait >= delay && wait <= delay * 3 / 2,
                "{wait:?} for {delay:?}"
            );
        }
        b.reset();
        let wait = b.next_wait();
        assert!(
            wait >= start && wait <= start * 3 / 2,
            "{wait:?} after reset"
        );
    }
}

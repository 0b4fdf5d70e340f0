//! When the driver reads the config over REST, as a plain state machine: at most one read in
//! flight (requests meanwhile fold into one more read after it), who waits for which read,
//! retries with backoff after a failure, and the polling timer. No I/O: the driver asks it
//! whether to start a read and tells it how the read ended.

use std::time::Duration;

use tokio::time::Instant;

/// Exponential backoff with jitter: each wait is between half and all of the current step.
#[derive(Debug)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    step: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            step: min,
        }
    }

    /// The next wait; the step doubles up to the maximum.
    pub fn next(&mut self) -> Duration {
        let wait = self.step.mul_f64(0.5 + rand::random::<f64>() * 0.5);
        self.step = (self.step * 2).min(self.max);
        wait
    }

    /// Back to the smallest step.
    pub fn reset(&mut self) {
        self.step = self.min;
    }
}

/// REST reads: in flight or not, who waits for them, and when the next one is due. `W` is a
/// waiter (the driver's reply channel of a `refresh`).
#[derive(Debug)]
pub(crate) struct Reads<W> {
    in_flight: bool,
    /// Whether another read must follow the one in flight.
    again: bool,
    /// Waiters answered by the read in flight.
    current: Vec<W>,
    /// Waiters answered by the next read.
    next: Vec<W>,
    retry: Backoff,
    retry_at: Option<Instant>,
    poll_every: Option<Duration>,
    poll_at: Option<Instant>,
}

impl<W> Reads<W> {
    /// The first retry waits 250 to 500 ms, the longest 30 to 60 s.
    pub const RETRY_MIN: Duration = Duration::from_millis(500);
    pub const RETRY_MAX: Duration = Duration::from_secs(60);

    /// Reads polling every `poll_every` (if set); when the manager did not answer at start, the
    /// first retry is already scheduled.
    pub fn new(poll_every: Option<Duration>, manager_ok: bool, now: Instant) -> Self {
        let mut reads = Self {
            in_flight: false,
            again: false,
            current: Vec::new(),
            next: Vec::new(),
            retry: Backoff::new(Self::RETRY_MIN, Self::RETRY_MAX),
            retry_at: None,
            poll_every,
            poll_at: poll_every.map(|every| now + every),
        };
        if !manager_ok {
            reads.retry_at = Some(now + reads.retry.next());
        }
        reads
    }

    /// A read is wanted (a refresh, a reconnect, an update that must come over REST), with
    /// someone to answer if `waiter` is given. Returns whether to start a read now; if one is
    /// in flight, one more follows it instead.
    pub fn want(&mut self, waiter: Option<W>) -> bool {
        self.next.extend(waiter);
        if self.in_flight {
            self.again = true;
            return false;
        }
        self.in_flight = true;
        self.current.append(&mut self.next);
        true
    }

    /// The read in flight ended (`ok`: the manager answered). Returns the waiters it answers,
    /// and whether to start the next read now.
    pub fn finished(&mut self, ok: bool, now: Instant) -> (Vec<W>, bool) {
        self.in_flight = false;
        if ok {
            self.retry.reset();
            self.retry_at = None;
        } else {
            self.retry_at = Some(now + self.retry.next());
        }
        let answered = std::mem::take(&mut self.current);
        let again = std::mem::take(&mut self.again) || !self.next.is_empty();
        (answered, again && self.want(None))
    }

    /// When the timer must wake the driver: the retry or the poll, whichever comes first.
    pub fn due_at(&self) -> Option<Instant> {
        match (self.retry_at, self.poll_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The timer fired: returns whether to start a read now. The next poll is counted from now.
    pub fn fire(&mut self, now: Instant) -> bool {
        self.retry_at = None;
        self.poll_at = self.poll_every.map(|every| now + every);
        self.want(None)
    }

    /// Everyone still waiting (the client is stopping).
    pub fn drain(&mut self) -> Vec<W> {
        self.current.drain(..).chain(self.next.drain(..)).collect()
    }
}

#[cfg(test)]
mod tests {
    use tokio::time::advance;

    use super::*;

    /// How long from now the next read is due.
    fn due_in(reads: &Reads<u32>) -> Option<Duration> {
        reads.due_at().map(|at| at - Instant::now())
    }

    #[tokio::test(start_paused = true)]
    async fn requests_during_a_read_fold_into_one_more_read_after_it() {
        let mut reads = Reads::new(None, true, Instant::now());
        assert!(reads.want(Some(1)));
        assert!(!reads.want(Some(2)), "one read at a time");
        assert!(!reads.want(None));
        assert!(!reads.want(Some(3)));
        let (answered, again) = reads.finished(true, Instant::now());
        assert_eq!(
            answered,
            [1],
            "the read answers who waited before it started"
        );
        assert!(again, "one more read for those who asked meanwhile");
        let (answered, again) = reads.finished(true, Instant::now());
        assert_eq!(answered, [2, 3]);
        assert!(!again);
        assert_eq!(reads.due_at(), None, "nothing is scheduled without polling");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_read_is_retried_after_a_backoff_that_grows_caps_and_resets() {
        let mut reads: Reads<u32> = Reads::new(None, true, Instant::now());
        assert!(reads.want(None));
        let mut step = Reads::<u32>::RETRY_MIN;
        for _ in 0..10 {
            let (_, again) = reads.finished(false, Instant::now());
            assert!(!again);
            let wait = due_in(&reads).unwrap();
            assert!(wait >= step / 2 && wait <= step, "{wait:?} within {step:?}");
            advance(wait).await;
            assert!(reads.due_at().unwrap() <= Instant::now());
            assert!(reads.fire(Instant::now()), "the retry starts a read");
            step = (step * 2).min(Reads::<u32>::RETRY_MAX);
        }
        assert_eq!(
            step,
            Reads::<u32>::RETRY_MAX,
            "the step stops growing at the cap"
        );
        reads.finished(true, Instant::now());
        assert_eq!(reads.due_at(), None, "success cancels the retry");
        assert!(reads.want(None));
        reads.finished(false, Instant::now());
        assert!(
            due_in(&reads).unwrap() <= Reads::<u32>::RETRY_MIN,
            "and the backoff starts over"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_started_without_its_manager_retries_soon() {
        let reads: Reads<u32> = Reads::new(None, false, Instant::now());
        assert!(due_in(&reads).unwrap() <= Reads::<u32>::RETRY_MIN);
    }

    #[tokio::test(start_paused = true)]
    async fn polling_reads_again_every_interval_counted_from_the_last_poll() {
        let every = Duration::from_secs(30);
        let mut reads: Reads<u32> = Reads::new(Some(every), true, Instant::now());
        assert_eq!(due_in(&reads), Some(every));
        advance(every).await;
        assert!(reads.fire(Instant::now()));
        assert_eq!(due_in(&reads), Some(every));
        // A poll that fires while a read is in flight asks for one more after it.
        advance(every).await;
        assert!(!reads.fire(Instant::now()));
        let (_, again) = reads.finished(true, Instant::now());
        assert!(again);
    }

    #[tokio::test(start_paused = true)]
    async fn stopping_hands_back_everyone_still_waiting() {
        let mut reads = Reads::new(None, true, Instant::now());
        reads.want(Some(1));
        reads.want(Some(2));
        assert_eq!(reads.drain(), [1, 2]);
    }
}

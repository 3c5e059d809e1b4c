//! The one way statmsg retries: an attempt is repeated after growing pauses ([`Backoff`]) until it
//! succeeds, fails for good, or shutdown comes first. Used by every stage that waits for a server
//! (Kafka, InfluxDB) to come back.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use crate::shutdown::{pause, unless_stopped, Shutdown, Stopped};

/// Longest pause between two attempts.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// Pauses between attempts: from `first`, doubled after each failure up to [`MAX_WAIT`], back to
/// `first` after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(first: Duration) -> Backoff {
        Backoff { first, next: first }
    }

    /// The pause to take now; the next one is twice as long.
    pub fn failed(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(MAX_WAIT);
        now
    }

    pub fn succeeded(&mut self) {
        self.next = self.first;
    }
}

/// Retrying one thing: each failure is logged with what failed and why, then paused after,
/// giving way to a shutdown. The caller's loop makes the attempts:
///
/// ```text
/// let mut retry = Retry::new(shutdown, "tracker state topic", FIRST_WAIT);
/// while let Err(e) = unless_stopped(shutdown, store.catch_up()).await? {
///     retry.after(e).await?;
/// }
/// ```
#[derive(Debug)]
pub struct Retry<'a> {
    shutdown: &'a Shutdown,
    what: String,
    backoff: Backoff,
    /// Since when it has been waiting for a failover (none after a failure).
    waiting_since: Option<std::time::Instant>,
}

/// How long a failover may take before waiting for it counts as failing: a killed broker is
/// fenced after about 9 s, then a new leader is elected (`../soak.md` measured this).
pub const FAILOVER_PATIENCE: Duration = Duration::from_secs(30);

impl<'a> Retry<'a> {
    pub fn new(shutdown: &'a Shutdown, what: impl Into<String>, first: Duration) -> Retry<'a> {
        Retry { shutdown, what: what.into(), backoff: Backoff::new(first), waiting_since: None }
    }

    /// Logs the failure and pauses before the next attempt, longer each time. `Err(Stopped)`
    /// when shutdown came first.
    pub async fn after(&mut self, why: impl Display) -> Result<(), Stopped> {
        self.waiting_since = None;
        let wait = self.backoff.failed();
        tracing::warn!("{}: {why}; retrying in {wait:?}", self.what);
        pause(self.shutdown, wait).await
    }

    /// A wait, not a failure: the server is moving (a Kafka broker lost, a partition's leader
    /// elected anew) and the client follows by itself, so the next attempt comes after the
    /// first pause, never a longer one: a backoff grown meanwhile would outlast the failover by
    /// tens of seconds. Said once a streak; a streak longer than [`FAILOVER_PATIENCE`] is no
    /// failover but an outage, and is retried as a failure ([`Retry::after`]). `Err(Stopped)`
    /// when shutdown came first.
    pub async fn wait(&mut self, why: impl Display) -> Result<(), Stopped> {
        let since = *self.waiting_since.get_or_insert_with(|| {
            tracing::info!("{}: {why}; waiting for the failover", self.what);
            std::time::Instant::now()
        });
        if since.elapsed() > FAILOVER_PATIENCE {
            let after = self.after(format!("{why} (no failover after {FAILOVER_PATIENCE:?})")).await;
            self.waiting_since = Some(since);
            return after;
        }
        pause(self.shutdown, self.backoff.first).await
    }
}

/// How an attempt failed.
#[derive(Debug)]
pub enum Failure<E> {
    /// Worth another try after a pause (a server away, overloaded, a network error).
    Transient(String),
    /// Trying again cannot help (refused credentials, refused data): given to the caller.
    Final(E),
}

/// Runs `attempt` until it succeeds or fails for good, pausing after each transient failure
/// (see [`Retry`]). `Err(Stopped)` when shutdown came first, also in the middle of an attempt
/// (which is then dropped).
pub async fn until_done<T, E, Fut>(
    shutdown: &Shutdown,
    what: impl Into<String>,
    first: Duration,
    mut attempt: impl FnMut() -> Fut,
) -> Result<Result<T, E>, Stopped>
where
    Fut: Future<Output = Result<T, Failure<E>>>,
{
    let mut retry = Retry::new(shutdown, what, first);
    loop {
        match unless_stopped(shutdown, attempt()).await? {
            Ok(done) => return Ok(Ok(done)),
            Err(Failure::Final(e)) => return Ok(Err(e)),
            Err(Failure::Transient(why)) => retry.after(why).await?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_maximum_and_start_again_after_a_success() {
        let mut backoff = Backoff::new(Duration::from_secs(10));
        let waits: Vec<_> = (0..4).map(|_| backoff.failed().as_secs()).collect();
        assert_eq!(waits, [10, 20, 30, 30]);
        backoff.succeeded();
        assert_eq!(backoff.failed(), Duration::from_secs(10));
    }

    #[tokio::test]
    async fn a_broker_failover_is_a_wait_not_a_growing_backoff() {
        // Regression (issue 28): the tracker state reader backed off 0.2 s ... 25.6 s through a
        // broker kill, and half the sites got no health point for over a minute.
        let shutdown = Shutdown::new();
        let first = Duration::from_millis(20);
        let mut retry = Retry::new(&shutdown, "test", first);
        let started = std::time::Instant::now();
        for _ in 0..8 {
            retry.wait("broker transport failure").await.unwrap();
        }
        // Eight first pauses: 160 ms. A growing backoff would have taken 20 * (2^8 - 1) = 5.1 s.
        assert!(started.elapsed() < Duration::from_millis(1500), "{:?}", started.elapsed());
        assert!(started.elapsed() >= first * 8);
    }

    #[tokio::test]
    async fn transient_failures_are_retried_and_final_ones_returned() {
        let shutdown = Shutdown::new();
        let mut tries = 0;
        let result: Result<Result<u32, &str>, Stopped> =
            until_done(&shutdown, "test", Duration::from_millis(1), || {
                tries += 1;
                let now = tries;
                async move {
                    if now < 3 {
                        Err(Failure::Transient("away".into()))
                    } else {
                        Ok(now)
                    }
                }
            })
            .await;
        assert_eq!(result, Ok(Ok(3)));
        let result: Result<Result<(), &str>, Stopped> =
            until_done(&shutdown, "test", Duration::from_millis(1), || async {
                Err(Failure::Final("refused"))
            })
            .await;
        assert_eq!(result, Ok(Err("refused")));
    }

    #[tokio::test]
    async fn shutdown_ends_the_retries_and_an_attempt_in_flight() {
        let shutdown = Shutdown::new();
        shutdown.cancel();
        let never = || std::future::pending::<Result<(), Failure<()>>>();
        assert_eq!(until_done(&shutdown, "test", Duration::from_secs(1), never).await, Err(Stopped));
        let shutdown = Shutdown::new();
        let stopper = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            stopper.cancel();
        });
        let failing = || async { Err::<(), _>(Failure::<()>::Transient("away".into())) };
        let started = std::time::Instant::now();
        assert_eq!(until_done(&shutdown, "test", Duration::from_secs(1), failing).await, Err(Stopped));
        assert!(started.elapsed() < Duration::from_millis(900), "the pause gave way to the shutdown");
    }
}

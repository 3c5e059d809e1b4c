//! The one shutdown path of the process: a [`CancellationToken`] cancelled by Ctrl-C or SIGTERM
//! (or by a stage that fails), which every stage watches. Stages finish their current batch's
//! acknowledgements when they can and never move a checkpoint or offset past unacknowledged work.

pub use tokio_util::sync::CancellationToken as Shutdown;

/// A token cancelled on the first Ctrl-C or SIGTERM.
pub fn on_signals() -> Shutdown {
    let token = Shutdown::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        // Cancel first: nothing (not even a log line) may stand between a signal and the stop.
        cancel.cancel();
        tracing::info!("shutdown requested");
    });
    token
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(e) => {
            tracing::warn!("cannot watch SIGTERM ({e}); Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

/// A task that ends with the scope that owns it, however that scope is left.
#[derive(Debug)]
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// "Shutdown came first": what a stage's step returns when it gave way to a shutdown before its
/// work was acknowledged. The caller then moves no checkpoint or offset and returns; with `?` it
/// travels up to the stage's loop, which ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped;

/// Runs `work` unless shutdown comes first (then `work` is dropped, cancelled).
pub async fn unless_stopped<F: std::future::Future>(
    shutdown: &Shutdown,
    work: F,
) -> Result<F::Output, Stopped> {
    tokio::select! {
        biased;
        _ = shutdown.cancelled() => Err(Stopped),
        output = work => Ok(output),
    }
}

/// Waits `pause`, or less when shutdown comes first.
pub async fn pause(shutdown: &Shutdown, pause: std::time::Duration) -> Result<(), Stopped> {
    unless_stopped(shutdown, tokio::time::sleep(pause)).await
}

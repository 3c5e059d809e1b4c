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
        tracing::info!("shutdown requested");
        cancel.cancel();
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

//! The signal that asks a server to stop.

use tracing::{error, info};

/// Completes when the process receives SIGINT (Ctrl-C) or SIGTERM.
///
/// A signal that cannot be listened for is logged and never completes, so
/// the other one still works. Needs a tokio runtime with I/O enabled.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            error!(%err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(err) => {
                error!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    let signal = tokio::select! {
        () = ctrl_c => "SIGINT",
        () = terminate => "SIGTERM",
    };
    info!(signal, "shutdown signal received");
}

#[cfg(all(test, unix))]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn completes_on_sigterm() {
        let mut signal = std::pin::pin!(shutdown_signal());
        // Poll once so that the handlers are installed before the signal is
        // sent (an unhandled SIGTERM would end the test process).
        let first = tokio::time::timeout(Duration::ZERO, &mut signal).await;
        assert!(first.is_err(), "completes only on a signal");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &std::process::id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        tokio::time::timeout(Duration::from_secs(10), signal)
            .await
            .expect("SIGTERM completes the future");
    }
}

//! The signal that asks a server to stop.

use std::future::Future;

use tracing::info;

/// A future that completes when the process receives SIGINT (Ctrl-C) or
/// SIGTERM.
///
/// The handlers are installed when this is called, not when the future is
/// first polled: a server logs "ready" before its `run` gets round to
/// polling the shutdown future, and a SIGTERM sent in between must stop it
/// gracefully rather than kill it. So call it before starting the server,
/// from inside a tokio runtime (with I/O enabled). A signal that cannot be
/// listened for is logged and never completes, so the other one still works.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let received = {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = listen(signal(SignalKind::interrupt()), "SIGINT");
        let terminate = listen(signal(SignalKind::terminate()), "SIGTERM");
        async move {
            tokio::select! {
                () = interrupt => "SIGINT",
                () = terminate => "SIGTERM",
            }
        }
    };
    #[cfg(not(unix))]
    let received = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(%err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
        "Ctrl-C"
    };
    async move {
        let signal = received.await;
        info!(signal, "shutdown signal received");
    }
}

/// Completes on the next delivery of an installed signal; never, if it could
/// not be installed.
#[cfg(unix)]
async fn listen(signal: std::io::Result<tokio::signal::unix::Signal>, name: &'static str) {
    match signal {
        Ok(mut signal) => {
            signal.recv().await;
        }
        Err(err) => {
            tracing::error!(%err, "cannot listen for {name}");
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn installed_at_once_and_completes_on_sigterm() {
        // Not polled before the signal is sent: an uninstalled handler would
        // leave SIGTERM's default action, which ends the test process.
        let signal = shutdown_signal();
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

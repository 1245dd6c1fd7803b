//! `auth-web`: reads [`auth_web::Config`] from the environment, binds, and
//! serves until Ctrl-C or SIGTERM.

use anyhow::Context;
use keycafe_core::process::{EnvConfig, init_tracing, shutdown_signal};

const USAGE: &str = "\
auth-web: the Keycafe example's web front end.

Usage: auth-web        (no arguments; settings come from the environment)

  AUTH_WEB_ADDR               listen address            [127.0.0.1:3000]
  AUTH_SERVER_URL             auth-server's base URL    [http://127.0.0.1:8080]
  KEYCAFE_SEEDS               Keycafe node(s), comma-separated [127.0.0.1:9814]
  KEYCAFE_PASSWORD            Keycafe AUTH password     [none]
  KEYCAFE_TIMEOUT_MS          Keycafe connect/reply timeout [1000]
  AUTH_WEB_API_TIMEOUT_MS     limit per auth-server call [10000]
  AUTH_WEB_SECURE_COOKIES     Secure session cookie (HTTPS) [false]
  AUTH_WEB_SESSION_IDLE_SECS  session idle timeout      [1800]
  AUTH_WEB_SESSION_PREFIX     Keycafe key prefix        [web:session:]
  AUTH_INTERNAL_SECRET        shared with auth-server; sent with logins so that it
                              believes the browser address in X-Forwarded-For [none]
  RUST_LOG                    log filter                [info]
";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if let Some(arg) = std::env::args().nth(1) {
        if arg == "--help" || arg == "-h" {
            print!("{USAGE}");
            return Ok(());
        }
        anyhow::bail!("unexpected argument {arg:?}; see auth-web --help");
    }
    init_tracing("info")?;
    let config = auth_web::Config::from_env()?;
    let listener = tokio::net::TcpListener::bind(config.listen_addr)
        .await
        .with_context(|| format!("binding {}", config.listen_addr))?;
    auth_web::run(config, listener, shutdown_signal()).await
}

//! A real browser: headless Chromium driven over WebDriver (chromedriver +
//! fantoccini) through the whole stack — Keycafe, auth-server and auth-web,
//! all in-process on loopback ports.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`./test.sh` installs
//! them); `CHROMIUM` and `CHROMEDRIVER` override the binaries' paths. On
//! failure a screenshot is saved and its path printed. Set
//! `AUTH_WEB_SCREENSHOTS=<dir>` to also keep screenshots of the login and
//! profile pages of a passing run.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, ensure};
use fantoccini::wd::{Capabilities, TimeoutConfiguration};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use support::{DEMO_EMAIL, DEMO_NAME, DEMO_PASSWORD, Stack};
use tokio::process::{Child, Command};

/// Limit on the browser's start and the whole scenario together.
const TEST_LIMIT: Duration = Duration::from_secs(60);
/// Limit on waiting for one element to appear.
const ELEMENT_WAIT: Duration = Duration::from_secs(10);

fn binary(variable: &str, default: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| default.to_string())
}

/// chromedriver as a child process on a free port, killed (with the
/// browser it started) on drop.
struct ChromeDriver {
    child: Child,
    url: String,
}

impl ChromeDriver {
    async fn start() -> ChromeDriver {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
            probe.local_addr().expect("local addr").port()
        };
        let path = binary("CHROMEDRIVER", "/usr/bin/chromedriver");
        let child = Command::new(&path)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log_path().display()))
            // Without a session bus, Chromium can wait ~25 s for D-Bus at
            // start-up; tell it there is none.
            .env("DBUS_SESSION_BUS_ADDRESS", "disabled:")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so that drop can stop the browser too.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{path} starts (test.sh installs chromium-driver): {e}"));
        let driver = ChromeDriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let status = reqwest::Client::new();
        for _ in 0..100 {
            if let Ok(response) = status.get(format!("{}/status", driver.url)).send().await
                && response.status().is_success()
            {
                return driver;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not answer on {}", driver.url);
    }

    /// A fresh headless browser session with its own empty profile.
    async fn browser(&self, profile: &Path) -> Client {
        let mut capabilities = Capabilities::new();
        capabilities.insert(
            "goog:chromeOptions".to_string(),
            json!({
                "binary": binary("CHROMIUM", "/usr/bin/chromium"),
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--password-store=basic",
                    "--window-size=1200,1000",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("chromedriver starts a Chromium session (test.sh installs chromium)");
        let timeouts = TimeoutConfiguration::new(
            Some(Duration::from_secs(10)),
            Some(Duration::from_secs(15)),
            Some(Duration::ZERO),
        );
        client
            .update_timeouts(timeouts)
            .await
            .expect("set timeouts");
        client
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // The browser runs in chromedriver's process group: end the group.
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.start_kill();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_browser_signs_in_stays_signed_in_and_signs_out() {
    let driver = ChromeDriver::start().await;
    let profile = tempfile::tempdir().expect("browser profile dir");
    let stack = Stack::start().await;
    let deadline = tokio::time::Instant::now() + TEST_LIMIT;
    let Ok(browser) = tokio::time::timeout_at(deadline, driver.browser(profile.path())).await
    else {
        panic!(
            "Chromium did not start within {TEST_LIMIT:?}; see {}",
            log_path().display()
        );
    };

    let outcome = tokio::time::timeout_at(deadline, scenario(&browser, &stack)).await;
    let failure = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("{e:#}")),
        Err(_) => Some(format!("timed out after {TEST_LIMIT:?}")),
    };
    if failure.is_some() {
        match save_screenshot(&browser, &failure_dir(), "failure").await {
            Ok(path) => eprintln!("screenshot of the failure: {}", path.display()),
            Err(e) => eprintln!("no screenshot of the failure: {e:#}"),
        }
        eprintln!("chromedriver's log: {}", log_path().display());
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), browser.close()).await;
    if let Some(failure) = failure {
        panic!("browser scenario failed: {failure}");
    }
}

/// The visitor's story, step by step; the first step that goes wrong ends it.
async fn scenario(browser: &Client, stack: &Stack) -> anyhow::Result<()> {
    // The site's front door leads to the login page.
    browser.goto(&format!("{}/", stack.web)).await?;
    wait_for(browser, "#signin-title").await?;
    ensure!(path_of(browser).await? == "/login", "/ leads to /login");
    keep_screenshot(browser, "login").await?;

    // A wrong password shows the generic error.
    sign_in_with(browser, DEMO_EMAIL, "not-the-password").await?;
    let error = wait_for(browser, "#login-error").await?.text().await?;
    ensure!(
        error.contains("Invalid email or password"),
        "error shown: {error:?}"
    );

    // The demo account gets to the profile, with the session panel.
    sign_in_with(browser, DEMO_EMAIL, DEMO_PASSWORD).await?;
    let name = wait_for(browser, "#profile-name").await?.text().await?;
    ensure!(name == DEMO_NAME, "profile of {DEMO_NAME}, got {name:?}");
    ensure!(path_of(browser).await? == "/profile", "landed on /profile");
    // (Rendered text: the stylesheet upper-cases the labels.)
    let panel = wait_for(browser, "#session-panel").await?.text().await?;
    let panel = panel.to_lowercase();
    for expected in ["web:session:", "slot", "node", "expires in"] {
        ensure!(
            panel.contains(expected),
            "the panel shows {expected:?}: {panel:?}"
        );
    }
    keep_screenshot(browser, "profile").await?;

    // A reload keeps the visitor signed in.
    browser.refresh().await?;
    let name = wait_for(browser, "#profile-name").await?.text().await?;
    ensure!(
        name == DEMO_NAME,
        "still signed in after reload, got {name:?}"
    );

    // Signing out lands on the login page, and the profile is closed again.
    wait_for(browser, "#sign-out").await?.click().await?;
    wait_for(browser, "#signin-title").await?;
    ensure!(
        path_of(browser).await? == "/login",
        "signed out onto /login"
    );
    let source = browser.source().await?;
    ensure!(
        source.contains("You have been signed out."),
        "sign-out notice shown"
    );
    browser.goto(&format!("{}/profile", stack.web)).await?;
    wait_for(browser, "#signin-title").await?;
    ensure!(
        path_of(browser).await? == "/login",
        "/profile needs signing in again"
    );
    Ok(())
}

async fn sign_in_with(browser: &Client, email: &str, password: &str) -> anyhow::Result<()> {
    let email_field = wait_for(browser, "#email").await?;
    email_field.clear().await?;
    email_field.send_keys(email).await?;
    let password_field = browser.find(Locator::Css("#password")).await?;
    password_field.clear().await?;
    password_field.send_keys(password).await?;
    browser
        .find(Locator::Css("#sign-in"))
        .await?
        .click()
        .await?;
    Ok(())
}

async fn wait_for(browser: &Client, css: &str) -> anyhow::Result<fantoccini::elements::Element> {
    browser
        .wait()
        .at_most(ELEMENT_WAIT)
        .for_element(Locator::Css(css))
        .await
        .with_context(|| format!("waiting for {css}"))
}

async fn path_of(browser: &Client) -> anyhow::Result<String> {
    Ok(browser.current_url().await?.path().to_string())
}

/// Where failure screenshots and chromedriver's log go: `target/tmp/`.
fn failure_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

fn log_path() -> PathBuf {
    failure_dir().join("auth-web-chromedriver.log")
}

/// With `AUTH_WEB_SCREENSHOTS` set, keeps a screenshot of the current page.
async fn keep_screenshot(browser: &Client, name: &str) -> anyhow::Result<()> {
    if let Some(dir) = std::env::var_os("AUTH_WEB_SCREENSHOTS") {
        let path = save_screenshot(browser, Path::new(&dir), name).await?;
        eprintln!("screenshot: {}", path.display());
    }
    Ok(())
}

async fn save_screenshot(browser: &Client, dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let png = tokio::time::timeout(Duration::from_secs(10), browser.screenshot())
        .await
        .context("screenshot timed out")??;
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("auth-web-{name}.png"));
    std::fs::write(&path, png).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

//! Headless Chromium for the staff-page tests: Debian's chromium driven
//! through a chromedriver of the test's own (fantoccini), and the few steps
//! every scenario takes (read an element's text, type, submit and wait).

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use uuid::Uuid;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Longest wait for a page.
pub const WAIT: Duration = Duration::from_secs(20);

/// chromedriver for one test, in a process group of its own with the
/// browser it starts, all killed when dropped (also after a failed assert);
/// the browser profile is ours too, and removed.
pub struct Driver {
    process: Child,
    profile: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.process.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.process.kill();
        let _ = self.process.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A headless Chromium session through a chromedriver of our own.
pub async fn browser() -> Result<(Driver, Client), String> {
    browser_with(&[]).await
}

/// The same, with fake camera and microphone granted without asking (the
/// video-room test).
pub async fn browser_with_fake_media() -> Result<(Driver, Client), String> {
    browser_with(&[
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        "--autoplay-policy=no-user-gesture-required",
    ])
    .await
}

async fn browser_with(extra: &[&str]) -> Result<(Driver, Client), String> {
    let port = free_port();
    let profile =
        std::env::temp_dir().join(format!("sportello-chromium-{}", Uuid::new_v4().simple()));
    let process = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            format!(
                "{CHROMEDRIVER}: {e} (Debian's chromium-driver; scripts/services.sh installs it)"
            )
        })?;
    let driver = Driver {
        process,
        profile: profile.clone(),
    };
    let mut args = vec![
        "--headless=new".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        "--disable-gpu".to_owned(),
        format!("--user-data-dir={}", profile.display()),
    ];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({ "binary": CHROMIUM, "args": args }),
    );
    let url = format!("http://127.0.0.1:{port}");
    // chromedriver needs a moment to listen, Chromium a few to start.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities.clone())
            .connect(&url)
            .await
        {
            Ok(client) => return Ok((driver, client)),
            Err(error) if tokio::time::Instant::now() > deadline => {
                return Err(format!("no browser session: {error}"))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

pub async fn text_of(client: &Client, css: &str) -> String {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap()
}

pub async fn type_into(client: &Client, css: &str, text: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .send_keys(text)
        .await
        .unwrap();
}

/// Clicks a submit button and waits until the browser shows the page that
/// answered (the old page's elements go stale once the new one is loaded).
pub async fn submit(client: &Client, css: &str) {
    let old_page = client.find(Locator::Css("html")).await.unwrap();
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while old_page.tag_name().await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{css} led to no new page"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("main"))
        .await
        .unwrap();
}

pub async fn path_of(client: &Client) -> String {
    client.current_url().await.unwrap().path().to_owned()
}

//! The SMTP sink the tests deliver to (`scripts/smtp_sink.py`, aiosmtpd).
//!
//! The test command starts one and exports `TEST_SMTP_URL`/`TEST_MAIL_DIR`;
//! a plain `cargo test` without them starts one per test binary, which exits
//! with it. Each message lands in `<mail dir>/<recipient>/<n>.eml`, so tests
//! using their own recipients never see each other's mail.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

pub struct Sink {
    pub url: String,
    pub dir: PathBuf,
}

pub fn sink() -> &'static Sink {
    static SINK: OnceLock<Sink> = OnceLock::new();
    SINK.get_or_init(|| {
        if let (Ok(url), Ok(dir)) = (
            std::env::var("TEST_SMTP_URL"),
            std::env::var("TEST_MAIL_DIR"),
        ) {
            return Sink {
                url,
                dir: dir.into(),
            };
        }
        let dir =
            std::env::temp_dir().join(format!("sportello-mail-{}", uuid::Uuid::new_v4().simple()));
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/smtp_sink.py");
        // Never waited on: it lives as long as this test binary
        // (`--exit-with-parent`).
        #[allow(clippy::zombie_processes)]
        let mut child = Command::new("/usr/bin/python3")
            .args([script, "--port", "0", "--exit-with-parent", "--maildir"])
            .arg(&dir)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start scripts/smtp_sink.py (Debian package python3-aiosmtpd)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("SMTP sink said {line:?}"));
        Sink {
            url: format!("smtp://127.0.0.1:{port}"),
            dir,
        }
    })
}

/// The raw messages delivered to `address` so far.
pub fn delivered_to(address: &str) -> Vec<String> {
    let folder = sink().dir.join(address.to_lowercase());
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    // In the order the sink received them: by number, not as text ("10" < "9").
    files.sort_by_key(|p| {
        p.file_stem()
            .and_then(|stem| stem.to_str())
            .and_then(|stem| stem.parse::<u64>().ok())
            .unwrap_or(u64::MAX)
    });
    files
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .map(|raw| String::from_utf8_lossy(&raw).into_owned())
        .collect()
}

/// Waits until `address` has at least one message and returns them all.
pub async fn wait_for_mail(address: &str, within: Duration) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let mail = delivered_to(address);
        if !mail.is_empty() || tokio::time::Instant::now() > deadline {
            return mail;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The decoded text of every text part of a raw message (quoted-printable or
/// base64 bodies, as lettre writes them), for assertions on what the citizen reads.
pub fn readable(raw: &str) -> String {
    let parsed = mailparse::parse_mail(raw.as_bytes()).expect("a parseable message");
    let mut text = String::new();
    for header in &parsed.headers {
        text.push_str(&format!("{}: {}\n", header.get_key(), header.get_value()));
    }
    collect(&parsed, &mut text);
    text
}

fn collect(part: &mailparse::ParsedMail, out: &mut String) {
    if part.subparts.is_empty() {
        out.push_str(&part.get_body().unwrap_or_default());
        out.push('\n');
    }
    for sub in &part.subparts {
        collect(sub, out);
    }
}

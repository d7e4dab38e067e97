//! A newcomer's first run: the README's commands work from any folder the
//! invoking user can read, and its five-minute tour runs as written.
//!
//! Both tests drive the real scripts and binary, as a person would: the
//! setup script from a private clone, the tour's shell blocks (taken from
//! README.md) against `sportello up` started as a separate process.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::sms_sink::{self, SmsSink};
use crate::support::*;

fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("the service crate lives in workers/service/ of the repository")
        .to_path_buf()
}

/// A fresh folder only its owner may enter (mode 700), like root's home or
/// `mktemp -d`: another user (`rabbitmq`, `postgres`) cannot read inside it.
fn private_folder(name: &str) -> PathBuf {
    let folder = std::env::temp_dir().join(format!(
        "sportello-{name}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o700)).unwrap();
    folder
}

#[test]
fn the_setup_script_works_from_a_private_clone() {
    let folder = private_folder("clone");
    let clone = folder.join("sportello");
    let status = Command::new("git")
        .args(["clone", "--quiet"])
        .arg(repository_root())
        .arg(&clone)
        .status()
        .expect("git runs");
    assert!(status.success(), "git clone failed");
    let output = Command::new("bash")
        .arg("scripts/services.sh")
        .current_dir(&clone)
        .output()
        .expect("bash runs");
    let _ = std::fs::remove_dir_all(&folder);
    assert!(
        output.status.success(),
        "scripts/services.sh failed from a private clone:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// One shell block of the tour, and what its output must show (if anything).
#[derive(Debug)]
struct Step {
    script: String,
    expect: Option<String>,
}

/// The ```sh blocks of the README's "Five-minute tour" section, each with the
/// `<!-- tour: expect TEXT -->` line just before it, if any.
fn tour_steps(readme: &str) -> Vec<Step> {
    let section = readme
        .split("\n## Five-minute tour\n")
        .nth(1)
        .expect("the README has a five-minute tour")
        .split("\n## ")
        .next()
        .unwrap_or_default();
    let mut steps = Vec::new();
    let mut expect = None;
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        if let Some(directive) = line
            .strip_prefix("<!-- tour: expect ")
            .and_then(|rest| rest.strip_suffix(" -->"))
        {
            expect = Some(directive.to_owned());
        } else if line == "```sh" {
            let script: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
            steps.push(Step {
                script: script.join("\n"),
                expect: expect.take(),
            });
        }
    }
    steps
}

fn free_address() -> String {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string()
}

/// Ends a child process when dropped (the test may panic).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The SMTP sink `run.sh` uses, keeping mail under `maildir`.
fn start_smtp_sink(maildir: &Path) -> (Running, u16) {
    let mut child = Command::new("/usr/bin/python3")
        .arg(repository_root().join("scripts/smtp_sink.py"))
        .args(["--port", "0", "--maildir"])
        .arg(maildir)
        .stdout(Stdio::piped())
        .spawn()
        .expect("the SMTP sink starts");
    let mut first_line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first_line)
        .unwrap();
    let port = first_line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("the SMTP sink said {first_line:?}"));
    (Running(child), port)
}

/// The tour's shell script: every step as written, with this test's
/// addresses instead of the defaults; a step with an expectation is retried
/// (it reads an asynchronous result) until its output shows it.
fn tour_script(steps: &[Step], env: &TestEnv, api: &str, metrics: &str) -> String {
    let database = "postgres://sportello:sportello@127.0.0.1:5432/sportello";
    let mut script = String::from(
        r#"set -euo pipefail
expect_output() {
  local want="$1" step="$2" out=""
  for _ in $(seq 1 120); do
    if out=$(eval "$step" 2>&1) && [[ "$out" == *"$want"* ]]; then
      printf '%s\n' "$out"; return 0
    fi
    sleep 0.5
  done
  printf 'the tour step never showed %s; it printed:\n%s\n' "$want" "$out" >&2
  return 1
}
"#,
    );
    for (number, step) in steps.iter().enumerate() {
        let mut text = step
            .script
            .replace("127.0.0.1:8080", api)
            .replace("127.0.0.1:9464", metrics)
            .replace(database, &env.settings.database_url);
        for channel in ["web", "app", "contact_center", "cassetto", "desk"] {
            text = text.replace(
                &format!("amqp://channel-{channel}:channel-{channel}-dev@127.0.0.1:5672/sportello"),
                &env.channel_url(channel),
            );
        }
        script.push_str(&format!("echo '--- tour step {}'\n", number + 1));
        match &step.expect {
            None => script.push_str(&format!("{text}\n")),
            Some(want) => script.push_str(&format!(
                "expect_output '{}' '{}'\n",
                want.replace('\'', r"'\''"),
                text.replace('\'', r"'\''")
            )),
        }
    }
    script.push_str("wait\n");
    script
}

#[actix_rt::test]
async fn the_readme_tour_runs_as_written() {
    let readme = std::fs::read_to_string(repository_root().join("README.md")).unwrap();
    let steps = tour_steps(&readme);
    assert!(steps.len() >= 6, "the tour has its steps: {steps:?}");
    assert!(steps.iter().filter(|s| s.expect.is_some()).count() >= 5);

    let env = TestEnv::new().await;
    // Where the newcomer stands: a checkout (its schemas), with `var/`.
    let checkout = private_folder("tour");
    std::os::unix::fs::symlink(repository_root().join("schemas"), checkout.join("schemas"))
        .unwrap();
    std::fs::create_dir_all(checkout.join("var/mail")).unwrap();
    std::fs::create_dir_all(checkout.join("var/sms")).unwrap();
    // `run.sh` builds into $CARGO_TARGET_DIR/release; this test's binary
    // stands in for it.
    let target = checkout.join("target");
    std::fs::create_dir_all(target.join("release")).unwrap();
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_sportello"),
        target.join("release/sportello"),
    )
    .unwrap();

    let (_sink, smtp_port) = start_smtp_sink(&checkout.join("var/mail"));
    // As `run.sh` does without an SMS provider of its own.
    let sms = SmsSink::start(&checkout.join("var/sms"));
    let api = free_address();
    let metrics = free_address();
    let gateway = free_address();
    let system_env = [
        ("AMQP_URL", env.settings.amqp_url.clone()),
        ("DATABASE_URL", env.settings.database_url.clone()),
        ("HTTP_ADDRESS", api.clone()),
        ("METRICS_ADDRESS", metrics.clone()),
        ("GATEWAY_ADDRESS", gateway.clone()),
        ("SMTP_URL", format!("smtp://127.0.0.1:{smtp_port}")),
        ("SMS_PROVIDER_URL", sms.url.clone()),
        ("SMS_PROVIDER_USER", sms_sink::USER.to_owned()),
        ("SMS_PROVIDER_PASSWORD", sms_sink::PASSWORD.to_owned()),
        ("VIDEO_BASE_URL", format!("http://{gateway}")),
        (
            "DOCUMENT_STORE_DIR",
            checkout
                .join("data/documents")
                .to_string_lossy()
                .into_owned(),
        ),
    ];
    let _system = Running(
        Command::new(env!("CARGO_BIN_EXE_sportello"))
            .arg("up")
            .envs(system_env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("RUST_LOG", "warn")
            .current_dir(&checkout)
            .spawn()
            .expect("sportello up starts"),
    );
    let up = eventually(Duration::from_secs(60), || async {
        reqwest::get(format!("http://{api}/health"))
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    assert!(up, "sportello up did not serve /health");

    let output = Command::new("bash")
        .arg("-c")
        .arg(tour_script(&steps, &env, &api, &metrics))
        .current_dir(&checkout)
        .env("CARGO_TARGET_DIR", &target)
        .env("AMQP_URL", &env.settings.amqp_url)
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    drop(_system);
    let _ = std::fs::remove_dir_all(&checkout);
    env.cleanup().await;
    assert!(
        output.status.success(),
        "the README tour failed:\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    for step in &steps {
        if let Some(want) = &step.expect {
            assert!(
                stdout.contains(want.as_str()),
                "{want} not shown:\n{stdout}"
            );
        }
    }
}

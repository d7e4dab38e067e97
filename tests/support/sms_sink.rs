//! The development SMS provider `run.sh` starts (`scripts/sms_sink.py`), as
//! a process of its own: each message kept as `<dir>/<recipient>/<n>.json`.
//! (Most tests fake the provider in process instead: `sms_provider`.)

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

pub const USER: &str = "sportello";
pub const PASSWORD: &str = "sms-sink-dev";

pub struct SmsSink {
    /// The endpoint to set as `SMS_PROVIDER_URL`.
    pub url: String,
    pub dir: PathBuf,
    child: Child,
}

impl SmsSink {
    /// Starts the sink on a free port, keeping messages under `dir`.
    pub fn start(dir: &Path) -> SmsSink {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/sms_sink.py");
        let mut child = Command::new("/usr/bin/python3")
            .args([
                script,
                "--port",
                "0",
                "--user",
                USER,
                "--password",
                PASSWORD,
            ])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start scripts/sms_sink.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("the sink's first line");
        let Some(port) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            panic!("the SMS sink said {line:?}");
        };
        SmsSink {
            url: format!("http://127.0.0.1:{port}/messages"),
            dir: dir.to_owned(),
            child,
        }
    }

    /// The messages kept for `recipient`, in the order received.
    pub fn messages_to(&self, recipient: &str) -> Vec<Value> {
        let Ok(entries) = std::fs::read_dir(self.dir.join(recipient)) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        // Zero-padded numbers: their order as text is the order received.
        files.sort();
        files
            .iter()
            .filter_map(|p| std::fs::read(p).ok())
            .map(|raw| serde_json::from_slice(&raw).expect("the sink writes JSON"))
            .collect()
    }
}

impl Drop for SmsSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

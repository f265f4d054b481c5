//! Runs the real `keyward` binary against a throw-away keyring.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub struct Keyward {
    pub dir: tempfile::TempDir,
}

pub struct Run {
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    pub fn ok(self) -> Self {
        assert_eq!(self.status, 0, "keyward failed: {}", self.stderr);
        self
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8(self.stdout.clone()).expect("UTF-8 output")
    }

    /// A user error: exit 1 (not a panic's 101) and exactly one line on stderr.
    pub fn user_error(self) -> String {
        assert_eq!(
            self.status, 1,
            "expected a clean failure, got {}: {}",
            self.status, self.stderr
        );
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "expected one error line, got: {}",
            self.stderr
        );
        assert!(lines[0].starts_with("error: "), "{}", lines[0]);
        lines[0].to_owned()
    }
}

impl Keyward {
    /// A fresh keyring with an AES256 key `app`.
    pub fn new() -> Self {
        let keyward = Keyward {
            dir: tempfile::tempdir().unwrap(),
        };
        keyward.run(&["local", "init", "--key", "app"]).ok();
        keyward
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, contents: &[u8]) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with_stdin(args, None)
    }

    pub fn run_with_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_keyward"));
        command
            .args(args)
            .env("KEYWARD_KEYRING", self.path("keyring"))
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("keyward binary runs");
        if let Some(input) = stdin {
            child.stdin.take().unwrap().write_all(input).unwrap();
        }
        let Output {
            status,
            stdout,
            stderr,
        } = child.wait_with_output().unwrap();
        Run {
            status: status.code().unwrap_or(-1),
            stdout,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }

    /// Seals one file item as `namespace/name` and returns the manifest path.
    pub fn seal_file(&self, namespace: &str, name: &str, item: &str, value: &Path) -> PathBuf {
        let from_file = format!("{item}={}", value.display());
        let sealed = self
            .run(&[
                "seal",
                "-n",
                namespace,
                "--name",
                name,
                "--key",
                "app",
                "--from-file",
                &from_file,
            ])
            .ok();
        let path = self.path(&format!("{namespace}-{name}.yaml"));
        std::fs::write(&path, &sealed.stdout).unwrap();
        path
    }
}

//! `keyward lint DIR`: finds what the key-management guide calls
//! anti-patterns in a repository — plaintext Kubernetes Secrets, private
//! keys, AWS secret keys, secrets written into container env, Helm values
//! and configuration files — and says for each how to seal it instead. Findings never quote
//! the value found. Text for people, SARIF for code-scanning tools; the
//! exit status is non-zero when anything is found, for CI.

mod config;
mod entropy;
mod files;
mod manifests;
mod names;
mod rules;
mod sarif;
mod text;

pub use rules::Rule;

use crate::args::{LintArgs, LintFormat};
use anyhow::{Context, Result};
use std::path::Path;

/// One anti-pattern at one place.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    /// Relative to the scanned directory, with `/` separators.
    pub path: String,
    /// 1-based.
    pub line: usize,
    pub rule: Rule,
    /// What was found, without the value.
    pub message: String,
    /// The `keyward seal` command (or other step) that fixes it.
    pub fix: String,
}

/// Findings were reported: the command fails, so CI does.
#[derive(Debug)]
pub struct FindingsReported(pub usize);

impl std::fmt::Display for FindingsReported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} finding(s): seal the values as suggested, remove them from Git history, and rotate them (whoever could read the repository may have them)",
            self.0
        )
    }
}

impl std::error::Error for FindingsReported {}

pub fn run(args: LintArgs) -> Result<()> {
    let findings = scan(&args.dir)?;
    let report = match args.format {
        LintFormat::Text => text::render(&findings),
        LintFormat::Sarif => sarif::render(&findings)?,
    };
    match &args.output {
        Some(path) => std::fs::write(path, report)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => print!("{report}"),
    }
    if findings.is_empty() {
        Ok(())
    } else {
        Err(FindingsReported(findings.len()).into())
    }
}

/// Every finding under `dir`, sorted by path and line.
pub fn scan(dir: &Path) -> Result<Vec<Finding>> {
    let mut findings = Vec::new();
    for file in files::text_files(dir)? {
        let relative = relative(dir, &file.path);
        let mut found = rules::in_text(&relative, &file.text);
        if files::is_yaml(&file.path) {
            found.extend(manifests::in_yaml(&relative, &file.text));
        }
        if config::is_config(&relative) {
            found.extend(config::in_config(&relative, &file.text));
        }
        // An ignore comment on the line (or the one above) silences it.
        found.retain(|f| !files::ignored(&file.text, f.line));
        findings.extend(found);
    }
    findings.sort();
    findings.dedup();
    Ok(findings)
}

fn relative(dir: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(dir).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

//! Which files are read: text files under the directory, not following
//! symlinks, skipping VCS and build directories and anything large.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Directories never worth scanning (VCS metadata, build output, packages).
const SKIPPED_DIRS: [&str; 5] = [".git", "target", "node_modules", ".terraform", ".venv"];
/// Larger files are data, not configuration.
const MAX_FILE_BYTES: u64 = 1 << 20;
/// Put on a line, or the line above, to accept a finding there.
pub const IGNORE_MARK: &str = "keyward-lint: ignore";

pub struct TextFile {
    pub path: PathBuf,
    pub text: String,
}

pub fn text_files(dir: &Path) -> Result<Vec<TextFile>> {
    let meta = std::fs::metadata(dir)
        .with_context(|| format!("cannot read {}; give a directory to lint", dir.display()))?;
    anyhow::ensure!(
        meta.is_dir(),
        "{} is not a directory; give the repository's directory",
        dir.display()
    );
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries = std::fs::read_dir(&current)
            .with_context(|| format!("cannot list {}", current.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot list {}", current.display()))?;
            let kind = entry.file_type()?;
            let path = entry.path();
            if kind.is_dir() {
                let name = entry.file_name();
                if !SKIPPED_DIRS.iter().any(|s| name == *s) {
                    pending.push(path);
                }
            } else if kind.is_file() && entry.metadata()?.len() <= MAX_FILE_BYTES {
                // Binary or not UTF-8: not configuration anyone writes by hand.
                if let Ok(bytes) = std::fs::read(&path)
                    && !bytes.contains(&0)
                    && let Ok(text) = String::from_utf8(bytes)
                {
                    out.push(TextFile { path, text });
                }
            }
        }
    }
    Ok(out)
}

/// YAML, or JSON (which YAML reads): manifests, task definitions.
pub fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// Whether `line` (1-based) or the line above carries [`IGNORE_MARK`].
pub fn ignored(text: &str, line: usize) -> bool {
    let lines: Vec<&str> = text.lines().collect();
    [line.checked_sub(1), line.checked_sub(2)]
        .into_iter()
        .flatten()
        .filter_map(|i| lines.get(i))
        .any(|l| l.contains(IGNORE_MARK))
}

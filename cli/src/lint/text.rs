//! The report for people: `path:line: id name: message`, then the fix.

use super::Finding;
use std::fmt::Write;

pub fn render(findings: &[Finding]) -> String {
    let mut out = String::new();
    for f in findings {
        let _ = writeln!(
            out,
            "{}:{}: {} {}: {}\n    fix: {}",
            f.path,
            f.line,
            f.rule.id(),
            f.rule.name(),
            f.message,
            f.fix
        );
    }
    if findings.is_empty() {
        out.push_str("no findings\n");
    }
    out
}

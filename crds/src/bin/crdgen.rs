//! Prints every Keyward CRD as YAML, or writes one file per CRD.
//!
//! ```text
//! crdgen                       # all CRDs to stdout, separated by ---
//! crdgen --out-dir DIR         # DIR/keyward.io_<plural>.yaml
//! ```
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out_dir = match args.as_slice() {
        [] => None,
        [flag, dir] if flag == "--out-dir" => Some(PathBuf::from(dir)),
        _ => {
            eprintln!("usage: crdgen [--out-dir DIR]");
            return ExitCode::from(2);
        }
    };
    let files = match keyward_crds::generate::render_all() {
        Ok(files) => files,
        Err(e) => {
            eprintln!("crdgen: cannot render CRDs: {e}");
            return ExitCode::FAILURE;
        }
    };
    match out_dir {
        None => {
            let docs: Vec<&str> = files.iter().map(|(_, yaml)| yaml.as_str()).collect();
            print!("{}", docs.join("---\n"));
        }
        Some(dir) => {
            for (name, yaml) in &files {
                let path = dir.join(name);
                if let Err(e) = std::fs::write(&path, yaml) {
                    eprintln!("crdgen: cannot write {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
                eprintln!("wrote {}", path.display());
            }
        }
    }
    ExitCode::SUCCESS
}

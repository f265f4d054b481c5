//! A fresh SoftHSM2 for this test binary: installs the Debian package when the
//! module is missing (CI is a fresh Debian machine, running as root), makes a
//! private token directory, and initialises the tokens the tests use. Any
//! failure panics: these tests never skip.
#![allow(dead_code)] // each test binary uses a different part of this module

use keyward_provider_pkcs11::Pkcs11Config;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
pub const TOKEN: &str = "keyward-test";
/// A second token, so a failed login does not disturb the logged-in one.
pub const OTHER_TOKEN: &str = "keyward-other";
pub const PIN: &str = "4711-user";
const SO_PIN: &str = "4711-so";

pub struct SoftHsm {
    pub dir: PathBuf,
    pub pin_file: PathBuf,
}

impl SoftHsm {
    pub fn config(&self, token: &str) -> Pkcs11Config {
        Pkcs11Config::new(MODULE, token, &self.pin_file)
    }

    /// A PIN file holding `pin`, for the wrong-PIN test.
    pub fn pin_file_with(&self, name: &str, pin: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, format!("{pin}\n")).expect("write PIN file");
        path
    }
}

fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn install_softhsm() {
    if Path::new(MODULE).exists() {
        return;
    }
    eprintln!("SoftHSM2 is missing ({MODULE}); installing the Debian package softhsm2");
    run(Command::new("apt-get")
        .arg("update")
        .env("DEBIAN_FRONTEND", "noninteractive"));
    run(Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends", "softhsm2"])
        .env("DEBIAN_FRONTEND", "noninteractive"));
    assert!(
        Path::new(MODULE).exists(),
        "softhsm2 installed but {MODULE} is still missing"
    );
}

/// The `openssl` command, which checks signatures the way users will;
/// installed like SoftHSM2 when the machine lacks it.
pub fn openssl() -> &'static str {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        if Command::new("openssl").arg("version").output().is_ok() {
            return;
        }
        eprintln!("openssl is missing; installing the Debian package openssl");
        run(Command::new("apt-get")
            .arg("update")
            .env("DEBIAN_FRONTEND", "noninteractive"));
        run(Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends", "openssl"])
            .env("DEBIAN_FRONTEND", "noninteractive"));
    });
    "openssl"
}

fn init_token(conf: &Path, label: &str) {
    run(Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", conf)
        .args(["--init-token", "--free", "--label", label])
        .args(["--pin", PIN, "--so-pin", SO_PIN]));
}

/// Sets up SoftHSM2 once per test binary, before the module is loaded.
pub fn softhsm() -> &'static SoftHsm {
    static HSM: OnceLock<SoftHsm> = OnceLock::new();
    HSM.get_or_init(|| {
        install_softhsm();
        // Kept for the life of the test process; removed by the OS tmp cleaner.
        let dir = tempfile::Builder::new()
            .prefix("keyward-softhsm-")
            .tempdir()
            .expect("temp dir")
            .keep();
        let tokens = dir.join("tokens");
        std::fs::create_dir(&tokens).expect("token dir");
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                tokens.display()
            ),
        )
        .expect("write softhsm2.conf");
        init_token(&conf, TOKEN);
        init_token(&conf, OTHER_TOKEN);
        let pin_file = dir.join("user.pin");
        std::fs::write(&pin_file, format!("{PIN}\n")).expect("write PIN file");
        set_softhsm_conf(&conf);
        SoftHsm { dir, pin_file }
    })
}

#[allow(unsafe_code)]
fn set_softhsm_conf(conf: &Path) {
    // SAFETY: SoftHSM2 reads SOFTHSM2_CONF from the process environment when
    // the module is initialised; there is no other way to hand it a config.
    // This runs once, inside the OnceLock above, before any test has loaded
    // the module; the tests themselves do not read or write the environment.
    unsafe { std::env::set_var("SOFTHSM2_CONF", conf) };
}

//! The volume's memory-backed filesystem: a tmpfs of its own at the
//! kubelet's target path (never swapped to disk when swap is off, gone with
//! its unmount), and the check that a path already is one.

use anyhow::{Context, Result};
use rustix::mount::{MountFlags, UnmountFlags, mount, unmount};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::Path;

/// Size cap of one volume's tmpfs: SealedSecrets are small; this bounds
/// what a runaway write could take from the node's memory.
const TMPFS_SIZE: &str = "size=16m";

/// Creates `target` (the kubelet only makes its parent) and mounts a fresh
/// tmpfs there, unless one is mounted already (a republish).
pub fn ensure_tmpfs(target: &Path) -> Result<bool> {
    if is_mount_point(target)? {
        return Ok(false);
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(target)
        .with_context(|| format!("creating {}", target.display()))?;
    // Readable by the pod's users (kubelet applies fsGroup ownership on
    // top); no devices, setuid or executables.
    let options = std::ffi::CString::new(format!("mode=0755,{TMPFS_SIZE}"))
        .expect("mount options have no NUL");
    mount(
        "keyward",
        target,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        Some(options.as_c_str()),
    )
    .with_context(|| format!("mounting a tmpfs at {}", target.display()))?;
    Ok(true)
}

/// Unmounts `target` if it is a mount point, then removes the directory.
pub fn remove(target: &Path) -> Result<()> {
    if is_mount_point(target)? {
        unmount(target, UnmountFlags::empty())
            .with_context(|| format!("unmounting {}", target.display()))?;
    }
    match std::fs::remove_dir(target) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", target.display())),
    }
}

/// True when `path` is on another filesystem than its parent.
pub fn is_mount_point(path: &Path) -> Result<bool> {
    let Ok(own) = std::fs::symlink_metadata(path) else {
        return Ok(false);
    };
    let parent = path.parent().unwrap_or(Path::new("/"));
    let above =
        std::fs::metadata(parent).with_context(|| format!("reading {}", parent.display()))?;
    Ok(own.dev() != above.dev())
}

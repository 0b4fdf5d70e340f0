//! The data directory: one owner, private files. Holds the lock that keeps one server (or
//! offline key command) per directory, and the ways files are written there — folders 0700,
//! files 0600 from the moment they exist, replacements atomic.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};

/// An exclusive lock on `<data-dir>/dials.lock`: one server per data directory, and no offline
/// key command while it runs. Released when dropped (or when the process ends, however it ends).
#[derive(Debug)]
pub struct DataDirLock {
    _file: std::fs::File,
}

impl DataDirLock {
    /// Takes the lock, or says who holds it.
    pub fn acquire(data_dir: &Path) -> anyhow::Result<Self> {
        create_private_dir(data_dir)?;
        let path = data_dir.join("dials.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => bail!(
                "another dials is using the data directory {} (it holds {}); stop it first",
                data_dir.display(),
                path.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
    }
}

/// Creates a folder only its owner may enter (0700), with its parents, when it is missing.
pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    Ok(())
}

/// Writes a file only its owner may read (0600 from the moment it exists).
pub fn write_private_file(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(contents)?;
    file.sync_all()?;
    Ok(())
}

/// Replaces a private file atomically: writes the new contents beside it, then renames them
/// over it and syncs the folder, so a crash leaves the old file or the new one, never half.
pub fn replace_file(path: &Path, contents: &str) -> anyhow::Result<()> {
    replace_file_bytes(path, contents.as_bytes())
}

/// [`replace_file`] for contents that are bytes.
pub fn replace_file_bytes(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let mut staging = path.as_os_str().to_owned();
    staging.push(".new");
    let staging = std::path::PathBuf::from(staging);
    write_private_file(&staging, contents)?;
    std::fs::rename(&staging, path)
        .with_context(|| format!("cannot replace {}", path.display()))?;
    if let Some(dir) = path.parent()
        && let Ok(folder) = std::fs::File::open(dir)
    {
        // The rename is durable only once the folder is.
        let _ = folder.sync_all();
    }
    Ok(())
}

//! The one way flock-edge writes a file that must survive a crash: the agent's state, beacon
//! secrets and ballots, the model store's state, the anchor queue, model files, the CA's keys
//! and certificates.
//!
//! [`write()`] (and [`write_with`], which streams) creates a temporary file next to the final
//! name (`O_EXCL`, with its mode), writes the content, fsyncs it, renames it over the final name
//! and fsyncs the directory. A crash at any moment leaves either the old file or the new one
//! under the final name, never a part of either; the only trace a crash can leave is a
//! temporary file, whose name [`is_temporary`] recognises and [`sweep`] removes. A step that
//! fails removes the temporary file. [`Access::Private`] files (secrets, keys) are created with
//! mode 0600: the mode is set when the temporary file is created and never changed afterwards,
//! so there is no moment at which a secret is readable by others.
//!
//! [`create_dir_all`], [`remove`] and [`rename`] finish with the same directory fsync, so that
//! a created directory, a removed file or a move is durable once they return.
//!
//! Written by hand rather than with the `atomic-write-file` crate: its `commit` leaves the
//! temporary file behind when the rename fails, and its steps cannot be failed one by one in a
//! test, which this crate's tests do.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Who may read a file or directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Everyone (0644 for files, 0755 for directories, less what the umask takes away).
    Shared,
    /// Only the owner (0600, 0700): secrets, private keys, ballots.
    Private,
}

impl Access {
    /// The file mode this access creates files with (before the umask).
    pub fn file_mode(self) -> u32 {
        match self {
            Self::Shared => 0o644,
            Self::Private => 0o600,
        }
    }

    /// The mode directories are created with (before the umask).
    pub fn dir_mode(self) -> u32 {
        match self {
            Self::Shared => 0o755,
            Self::Private => 0o700,
        }
    }
}

/// The step of a durable operation that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// Creating the temporary file next to the final name.
    Create,
    /// Writing the content into the temporary file.
    Write,
    /// fsync of the temporary file.
    Sync,
    /// Renaming the temporary file over the final name (or moving a file).
    Rename,
    /// fsync of the directory after a change in it. When this fails after a rename, the final
    /// name already holds the new file, whole, but the change may not survive a power cut.
    SyncDir,
    /// Creating a directory.
    CreateDir,
    /// Removing a file.
    Remove,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Create => "creating a temporary file for",
            Self::Write => "writing",
            Self::Sync => "syncing",
            Self::Rename => "renaming into",
            Self::SyncDir => "syncing the directory of",
            Self::CreateDir => "creating the directory",
            Self::Remove => "removing",
        })
    }
}

/// A durable operation that failed, the file it was for and the step that failed. Up to the
/// rename, the final name still holds what it held before the call.
#[derive(Debug, thiserror::Error)]
#[error("{step} {}: {cause}", path.display())]
pub struct DurableError {
    /// The file (or directory) the operation was for.
    pub path: PathBuf,
    /// The step that failed.
    pub step: Step,
    /// The operating system's error.
    pub cause: std::io::Error,
}

fn failed(path: &Path, step: Step) -> impl FnOnce(std::io::Error) -> DurableError + '_ {
    move |cause| DurableError {
        path: path.to_path_buf(),
        step,
        cause,
    }
}

/// Writes `bytes` to `path` durably (see the module documentation). The parent directory must
/// exist.
pub fn write(path: &Path, access: Access, bytes: &[u8]) -> Result<(), DurableError> {
    write_with(path, access, |w| w.write_all(bytes))
}

/// Like [`write()`], with the content produced by `fill` into the temporary file (for content
/// too large to hold twice). If `fill` fails, nothing changes under `path` and the temporary
/// file is removed.
pub fn write_with(
    path: &Path,
    access: Access,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), DurableError> {
    write_steps(path, access, fill, &mut |_| Ok(()))
}

/// [`write_with`] with `inject` called before each step: an error it returns fails that step
/// (the crate's tests simulate a failure at every step with it).
fn write_steps(
    path: &Path,
    access: Access,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    inject: &mut dyn FnMut(Step) -> std::io::Result<()>,
) -> Result<(), DurableError> {
    let dir = parent(path);
    let name = path
        .file_name()
        .ok_or_else(|| failed(path, Step::Create)(std::io::ErrorKind::InvalidInput.into()))?;
    let (mut file, tmp) = inject(Step::Create)
        .and_then(|()| create_temporary(dir, name, access))
        .map_err(failed(path, Step::Create))?;
    let written = (|| {
        inject(Step::Write)
            .and_then(|()| fill(&mut file))
            .and_then(|()| file.flush())
            .map_err(failed(path, Step::Write))?;
        inject(Step::Sync)
            .and_then(|()| file.sync_all())
            .map_err(failed(path, Step::Sync))?;
        drop(file);
        inject(Step::Rename)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(failed(path, Step::Rename))
    })();
    if written.is_err() {
        // Best effort: the temporary file is ours and of no use now.
        let _ = std::fs::remove_file(&tmp);
        return written;
    }
    inject(Step::SyncDir)
        .and_then(|()| sync_dir(dir))
        .map_err(failed(path, Step::SyncDir))
}

/// Creates `.<name>.<6 random letters or digits>` in `dir`, exclusively, with `access`'s mode.
fn create_temporary(
    dir: &Path,
    name: &OsStr,
    access: Access,
) -> std::io::Result<(std::fs::File, PathBuf)> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    loop {
        let mut random = [0u8; SUFFIX];
        getrandom::fill(&mut random).map_err(std::io::Error::other)?;
        let suffix: String = random
            .iter()
            .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
            .collect();
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(".");
        tmp_name.push(&suffix);
        let tmp = dir.join(tmp_name);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(access.file_mode());
        }
        #[cfg(not(unix))]
        let _ = access;
        match options.open(&tmp) {
            Ok(f) => return Ok((f, tmp)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Creates `dir` and its missing parents with `access`'s mode (set at creation) and fsyncs the
/// parent of each directory it created.
pub fn create_dir_all(dir: &Path, access: Access) -> Result<(), DurableError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut at = dir;
    while !at.as_os_str().is_empty() && !at.is_dir() {
        missing.push(at);
        match at.parent() {
            Some(p) => at = p,
            None => break,
        }
    }
    for d in missing.into_iter().rev() {
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt as _;
            builder.mode(access.dir_mode());
        }
        match builder.create(d) {
            Ok(()) => sync_parent(d)?,
            // Made by someone else meanwhile: fine.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && d.is_dir() => {}
            Err(cause) => return Err(failed(d, Step::CreateDir)(cause)),
        }
    }
    #[cfg(not(unix))]
    let _ = access;
    Ok(())
}

/// Removes the file `path` and fsyncs its directory; a file that is not there is fine.
pub fn remove(path: &Path) -> Result<(), DurableError> {
    match std::fs::remove_file(path) {
        Ok(()) => sync_parent(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(cause) => Err(failed(path, Step::Remove)(cause)),
    }
}

/// Moves the file `from` to `to` (same file system) and fsyncs both directories.
pub fn rename(from: &Path, to: &Path) -> Result<(), DurableError> {
    std::fs::rename(from, to).map_err(failed(to, Step::Rename))?;
    sync_parent(to)?;
    if from.parent() != to.parent() {
        sync_parent(from)?;
    }
    Ok(())
}

fn sync_parent(path: &Path) -> Result<(), DurableError> {
    let dir = parent(path);
    sync_dir(dir).map_err(failed(dir, Step::SyncDir))
}

/// Length of the random suffix of a temporary file's name.
const SUFFIX: usize = 6;

/// Whether `name` is the name of a temporary file that a crash during [`write()`] left behind:
/// `.<final name>.<6 letters or digits>`. Readers of a directory skip such names.
pub fn is_temporary(name: &OsStr) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    let Some(rest) = name.strip_prefix('.') else {
        return false;
    };
    match rest.rsplit_once('.') {
        Some((base, suffix)) => {
            !base.is_empty()
                && suffix.len() == SUFFIX
                && suffix.bytes().all(|b| b.is_ascii_alphanumeric())
        }
        None => false,
    }
}

/// Removes the temporary files a crash left in `dir` (see [`is_temporary`]); returns how many.
/// Call it only where no other process writes into `dir` at the same time.
pub fn sweep(dir: &Path) -> Result<usize, DurableError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(cause) => return Err(failed(dir, Step::Remove)(cause)),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(failed(dir, Step::Remove))?;
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if is_file && is_temporary(&entry.file_name()) {
            remove(&entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Each step of a write, failed in turn: up to the rename the final name keeps the old
    /// content, after it the new one; never a part, and no temporary file stays.
    #[test]
    fn a_failure_at_each_step_leaves_a_whole_file_and_no_temporary() {
        let steps = [
            Step::Create,
            Step::Write,
            Step::Sync,
            Step::Rename,
            Step::SyncDir,
        ];
        for failing in steps {
            let dir = std::env::temp_dir().join(format!(
                "flock-durable-step-{failing:?}-{}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("state.json");
            write(&path, Access::Shared, b"old, whole").unwrap();
            let err = write_steps(
                &path,
                Access::Shared,
                |w| w.write_all(b"new, whole too"),
                &mut |step| {
                    if step == failing {
                        Err(std::io::Error::other("simulated"))
                    } else {
                        Ok(())
                    }
                },
            )
            .unwrap_err();
            assert_eq!(err.step, failing);
            let expected: &[u8] = if failing == Step::SyncDir {
                b"new, whole too"
            } else {
                b"old, whole"
            };
            assert_eq!(std::fs::read(&path).unwrap(), expected, "{failing:?}");
            let names: Vec<_> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names, vec![OsStr::new("state.json")], "{failing:?}");
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

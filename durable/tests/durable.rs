//! The durable write under failure: a writer that fails at every point of the content, a
//! commit that fails, and a process SIGKILLed at random moments while it rewrites a file. In
//! every case the final name holds a whole file (the old one or the new one) or nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use flock_durable::{Access, Step, is_temporary, sweep, write, write_with};

/// A file of generation `g`: 8 bytes of `g`, then `len` bytes each `g as u8`.
fn generation(g: u64, len: usize) -> Vec<u8> {
    let mut v = g.to_le_bytes().to_vec();
    v.resize(8 + len, g as u8);
    v
}

/// Whether `bytes` is a whole file of some generation of length `len`.
fn whole(bytes: &[u8], len: usize) -> bool {
    if bytes.len() != 8 + len {
        return false;
    }
    let g = u64::from_le_bytes(bytes[..8].try_into().unwrap());
    bytes[8..].iter().all(|&b| b == g as u8)
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "state")
        .collect()
}

#[test]
fn a_write_replaces_the_file_whole_with_the_mode_set_at_creation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    write(&path, Access::Private, b"one").unwrap();
    write(&path, Access::Private, b"two, longer").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"two, longer");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "a private file is 0600");
        // A shared file rewritten as private becomes private (the old mode is not copied).
        let shared = dir.path().join("shared");
        std::fs::write(&shared, b"x").unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o644)).unwrap();
        write(&shared, Access::Private, b"y").unwrap();
        let mode = std::fs::metadata(&shared).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    assert_eq!(leftovers(dir.path()).len(), 2, "no temporary file stays");
}

#[test]
fn a_writer_failing_at_any_point_leaves_the_old_file_and_no_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    let old = generation(1, 4096);
    write(&path, Access::Shared, &old).unwrap();
    let new = generation(2, 4096);
    // Fail after each 512-byte piece of the new content (0 pieces: before anything).
    for pieces in 0..=new.len() / 512 {
        let err = write_with(&path, Access::Shared, |w| {
            for chunk in new.chunks(512).take(pieces) {
                w.write_all(chunk)?;
            }
            Err(std::io::Error::other("disk full (simulated)"))
        })
        .unwrap_err();
        assert_eq!(err.step, Step::Write);
        assert_eq!(err.path, path);
        assert!(err.to_string().contains("disk full"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), old, "after {pieces} pieces");
        assert!(
            leftovers(dir.path()).is_empty(),
            "{:?}",
            leftovers(dir.path())
        );
    }
    // And with no old file, a failed write leaves nothing under the name.
    let fresh = dir.path().join("fresh");
    write_with(&fresh, Access::Shared, |w| {
        w.write_all(b"half")?;
        Err(std::io::Error::other("power cut (simulated)"))
    })
    .unwrap_err();
    assert!(!fresh.exists());
}

#[test]
fn a_commit_that_fails_leaves_the_final_name_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    // The final name is a directory with something in it: the rename must fail.
    let path = dir.path().join("taken");
    std::fs::create_dir(&path).unwrap();
    std::fs::write(path.join("inside"), b"keep").unwrap();
    let err = write(&path, Access::Shared, b"new").unwrap_err();
    assert_eq!(err.step, Step::Rename);
    assert!(path.is_dir());
    assert_eq!(std::fs::read(path.join("inside")).unwrap(), b"keep");
    let names = leftovers(dir.path());
    assert_eq!(names, vec!["taken".to_string()], "no temporary file stays");
    // A directory that does not exist fails at creation, naming the file.
    let missing = dir.path().join("no/such/dir/file");
    let err = write(&missing, Access::Shared, b"x").unwrap_err();
    assert_eq!(err.step, Step::Create);
    assert!(err.to_string().contains("no/such/dir/file"), "{err}");
}

#[test]
fn temporary_names_are_recognised_and_swept() {
    assert!(is_temporary(".state.json.a1B2c3".as_ref()));
    for name in [
        "state.json",
        ".state.json",
        ".state.json.abc",
        ".hidden.toolong7",
        "..abcdef",
    ] {
        assert!(!is_temporary(name.as_ref()), "{name}");
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".x.json.Zz9Zz9"), b"half").unwrap();
    std::fs::write(dir.path().join("x.json"), b"whole").unwrap();
    assert_eq!(sweep(dir.path()).unwrap(), 1);
    assert_eq!(leftovers(dir.path()), vec!["x.json".to_string()]);
}

#[test]
fn directories_are_created_with_their_mode() {
    let dir = tempfile::tempdir().unwrap();
    let deep = dir.path().join("a/b/c");
    flock_durable::create_dir_all(&deep, Access::Private).unwrap();
    assert!(deep.is_dir());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for d in ["a", "a/b", "a/b/c"] {
            let mode = std::fs::metadata(dir.path().join(d))
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o700, "{d}");
        }
    }
    flock_durable::create_dir_all(&deep, Access::Private).unwrap();
    let f = deep.join("f");
    write(&f, Access::Shared, b"1").unwrap();
    flock_durable::rename(&f, &dir.path().join("a/f")).unwrap();
    assert!(dir.path().join("a/f").exists() && !f.exists());
    flock_durable::remove(&dir.path().join("a/f")).unwrap();
    flock_durable::remove(&dir.path().join("a/f")).unwrap();
}

/// Size of the file the child rewrites, big enough that a kill often lands mid-write.
const CRASH_LEN: usize = 4 << 20;
const CHILD_ENV: &str = "FLOCK_DURABLE_CRASH_CHILD";

/// Run as its own process by `a_process_killed_while_writing_…`: rewrites one file in a loop,
/// a new generation each time, until it is killed.
#[test]
#[ignore = "the child process of a_process_killed_while_writing_leaves_a_whole_file, run by it"]
fn crash_child() {
    let path = std::env::var_os(CHILD_ENV).expect("run by the crash test");
    let path = Path::new(&path);
    for g in 1u64.. {
        let body = generation(g, CRASH_LEN);
        write_with(path, Access::Private, |w| {
            for chunk in body.chunks(64 << 10) {
                w.write_all(chunk)?;
            }
            Ok(())
        })
        .unwrap();
    }
}

#[test]
fn a_process_killed_while_writing_leaves_a_whole_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    let exe = std::env::current_exe().unwrap();
    let kills = 20;
    let mut generations = Vec::new();
    let mut swept = 0;
    for k in 0..kills {
        let mut child = std::process::Command::new(&exe)
            .args(["--ignored", "--exact", "crash_child", "--test-threads=1"])
            .env(CHILD_ENV, &path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Kill at moments spread over several writes (a few ms to ~200 ms).
        std::thread::sleep(Duration::from_millis(5 + (k * 37 % 200)));
        child.kill().unwrap(); // SIGKILL: no destructor, no cleanup
        child.wait().unwrap();
        if let Ok(bytes) = std::fs::read(&path) {
            assert!(whole(&bytes, CRASH_LEN), "kill {k}: a partial file");
            generations.push(u64::from_le_bytes(bytes[..8].try_into().unwrap()));
        }
        // What a kill may leave is a temporary file, which is recognised and swept.
        for name in leftovers(dir.path()) {
            assert!(is_temporary(name.as_ref()), "kill {k}: stray {name}");
        }
        swept += sweep(dir.path()).unwrap();
    }
    assert!(
        generations.len() >= kills as usize / 2,
        "most kills came after a first commit: {generations:?}"
    );
    eprintln!(
        "{kills} kills: whole files of generations {generations:?}; {swept} temporary files swept"
    );
}

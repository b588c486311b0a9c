//! The files a user names: inputs read with a cap, outputs checked before a
//! run and written whole or not at all.
//!
//! Inputs (a scenario, `--toxiproxy-config`) are small text files. Reading
//! one that is not — `/dev/zero`, a named pipe, a 50 MB log passed by
//! mistake — must fail at once, not fill memory or wait forever, so only
//! regular files are opened and at most [`MAX_INPUT_BYTES`] are read.
//!
//! Outputs (`--json`, `--history`) are checked before the run, so that a typo
//! in a path does not throw away a run's results at its end: the folder must
//! exist, and the target must not be a directory, a device or a symbolic
//! link. dualwrite refuses to write through a symbolic link rather than
//! following it (a link can point anywhere, and replacing it would surprise
//! whoever made it); name the real file instead. A file is written to a
//! temporary file with a random name in the same folder, created exclusively
//! (`O_CREAT | O_EXCL`, which never follows a link), then renamed over the
//! target: a reader sees the old file or the whole new one, never half.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// The most an input file may hold: the built-in scenarios are about 1 KiB,
/// toxiproxy.json a few hundred bytes.
pub const MAX_INPUT_BYTES: u64 = 1 << 20;

/// Why a file could not be read or written. Messages say what is wrong and
/// how to fix it; the caller names the file and the flag.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{0}")]
    Io(#[source] io::Error),

    #[error("it is {kind}, not a regular file; pass a file")]
    NotRegular { kind: &'static str },

    #[error("it is larger than {} KiB; a scenario or proxy list is a few hundred bytes", MAX_INPUT_BYTES / 1024)]
    TooLarge,

    #[error("it is not UTF-8 text")]
    NotText,

    #[error("the path is empty; name a file")]
    Empty,

    #[error("it names a folder, not a file; add a file name, e.g. {}", example.display())]
    IsDirectory { example: PathBuf },

    #[error("folder {} does not exist; create it (mkdir -p {0}) or name another", folder.display())]
    NoFolder { folder: PathBuf },

    #[error("{} is not a folder", folder.display())]
    FolderNotDirectory { folder: PathBuf },

    #[error(
        "it is a symbolic link (to {}); dualwrite does not write through links: name the file itself",
        target.display()
    )]
    Symlink { target: PathBuf },

    #[error("cannot create a file in folder {}", folder.display())]
    FolderNotWritable {
        folder: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What kind of thing a non-regular file is, in words.
fn kind_of(metadata: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = metadata.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_fifo() {
        "a named pipe"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

/// Reads a small text input: a regular file (links to one are fine: reading
/// through a link changes nothing), at most [`MAX_INPUT_BYTES`].
pub fn read_input(path: &Path) -> Result<String, FileError> {
    // Checked before opening: opening a named pipe blocks until something
    // writes to it, and a device may never end.
    let metadata = std::fs::metadata(path).map_err(FileError::Io)?;
    if !metadata.is_file() {
        return Err(FileError::NotRegular { kind: kind_of(&metadata) });
    }
    let file = File::open(path).map_err(FileError::Io)?;
    // The file may have grown since: the cap holds for what is read.
    let mut bytes = Vec::new();
    file.take(MAX_INPUT_BYTES + 1).read_to_end(&mut bytes).map_err(FileError::Io)?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(FileError::TooLarge);
    }
    String::from_utf8(bytes).map_err(|_| FileError::NotText)
}

/// An output file whose path was checked; [`OutputFile::write`] replaces it
/// atomically.
#[derive(Debug, Clone)]
pub struct OutputFile {
    /// As the user wrote it, for messages.
    shown: PathBuf,
    /// The folder it goes in, resolved (links in the folder's path are fine).
    folder: PathBuf,
    name: OsString,
}

impl OutputFile {
    /// Checks that `path` can be written: see the module's documentation.
    /// Creates and removes a temporary file in the folder, so that a folder
    /// dualwrite cannot write to is found now, not after the run.
    pub fn check(path: &Path) -> Result<OutputFile, FileError> {
        let text = path.as_os_str();
        if text.is_empty() {
            return Err(FileError::Empty);
        }
        // `Path` forgets a trailing slash; the user meant a folder.
        if text.as_encoded_bytes().ends_with(b"/") || path.file_name().is_none() {
            return Err(FileError::IsDirectory { example: path.join("report.json") });
        }
        let name = path.file_name().expect("checked above").to_owned();
        let folder = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        match std::fs::metadata(&folder) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(FileError::FolderNotDirectory { folder }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(FileError::NoFolder { folder }),
            Err(e) => return Err(FileError::Io(e)),
        }
        let folder = folder.canonicalize().map_err(FileError::Io)?;
        let file = OutputFile { shown: path.to_path_buf(), folder, name };
        file.check_target()?;
        // Can a file be created there? (A read-only folder, a full disk.)
        let probe = file
            .create_temporary()
            .map_err(|source| FileError::FolderNotWritable { folder: file.folder.clone(), source })?;
        drop(probe.1);
        let _ = std::fs::remove_file(&probe.0);
        Ok(file)
    }

    /// The path as the user wrote it.
    pub fn path(&self) -> &Path {
        &self.shown
    }

    /// True when both name the same file (`out/r.json` and `./out/r.json`).
    pub fn same_file(&self, other: &OutputFile) -> bool {
        self.folder == other.folder && self.name == other.name
    }

    fn target(&self) -> PathBuf {
        self.folder.join(&self.name)
    }

    /// The target may be missing or a regular file; nothing else.
    fn check_target(&self) -> Result<(), FileError> {
        let target = self.target();
        match std::fs::symlink_metadata(&target) {
            Ok(m) if m.file_type().is_symlink() => {
                Err(FileError::Symlink { target: std::fs::read_link(&target).unwrap_or_else(|_| PathBuf::from("?")) })
            }
            Ok(m) if m.is_dir() => Err(FileError::IsDirectory { example: self.shown.join("report.json") }),
            Ok(m) if !m.is_file() => Err(FileError::NotRegular { kind: kind_of(&m) }),
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(FileError::Io(e)),
        }
    }

    /// A new file with a random name beside the target, created
    /// exclusively: it cannot be a file or link someone placed there.
    fn create_temporary(&self) -> io::Result<(PathBuf, File)> {
        let mut name = OsString::from(".");
        name.push(&self.name);
        name.push(format!(".{}.tmp", uuid::Uuid::new_v4().simple()));
        let path = self.folder.join(name);
        let file = OpenOptions::new().write(true).create_new(true).open(&path)?;
        Ok((path, file))
    }

    /// Writes the file through `write`, atomically: a temporary file in the
    /// same folder, flushed to disk, then renamed over the target. On any
    /// failure the temporary file is removed and the target left as it was.
    pub fn write(&self, write: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> Result<(), FileError> {
        self.check_target()?;
        let (temporary, file) = self.create_temporary().map_err(FileError::Io)?;
        let result = (|| {
            let mut out = BufWriter::new(file);
            write(&mut out)?;
            let file = out.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            // rename(2) replaces the target's directory entry; it was
            // checked not to be a link or a directory a moment ago.
            std::fs::rename(&temporary, self.target())
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&temporary);
            return Err(FileError::Io(e));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[test]
    fn inputs_must_be_small_regular_files() {
        assert!(matches!(
            read_input(Path::new("/dev/zero")),
            Err(FileError::NotRegular { kind: "a character device" })
        ));
        assert!(matches!(read_input(Path::new("/")), Err(FileError::NotRegular { kind: "a directory" })));
        assert!(matches!(read_input(Path::new("/no/such/file")), Err(FileError::Io(_))));
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.toml");
        std::fs::write(&big, vec![b'#'; MAX_INPUT_BYTES as usize + 1]).unwrap();
        assert!(matches!(read_input(&big), Err(FileError::TooLarge)));
        let exact = dir.path().join("exact.toml");
        std::fs::write(&exact, vec![b'#'; MAX_INPUT_BYTES as usize]).unwrap();
        assert_eq!(read_input(&exact).unwrap().len(), MAX_INPUT_BYTES as usize);
        let binary = dir.path().join("binary.toml");
        std::fs::write(&binary, [0xff, 0xfe, 0]).unwrap();
        assert!(matches!(read_input(&binary), Err(FileError::NotText)));
    }

    #[test]
    fn outputs_are_checked_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert!(matches!(OutputFile::check(Path::new("")), Err(FileError::Empty)));
        assert!(matches!(OutputFile::check(d), Err(FileError::IsDirectory { .. })));
        let with_slash = PathBuf::from(format!("{}/new/", d.display()));
        assert!(matches!(OutputFile::check(&with_slash), Err(FileError::IsDirectory { .. })));
        assert!(matches!(OutputFile::check(&d.join("missing/r.json")), Err(FileError::NoFolder { .. })));
        std::fs::write(d.join("plain"), "x").unwrap();
        assert!(matches!(OutputFile::check(&d.join("plain/r.json")), Err(FileError::FolderNotDirectory { .. })));
        std::os::unix::fs::symlink(d.join("plain"), d.join("link.json")).unwrap();
        assert!(matches!(OutputFile::check(&d.join("link.json")), Err(FileError::Symlink { .. })));
        std::os::unix::fs::symlink(d.join("nowhere"), d.join("dangling.json")).unwrap();
        assert!(matches!(OutputFile::check(&d.join("dangling.json")), Err(FileError::Symlink { .. })));
        assert!(matches!(OutputFile::check(Path::new("/dev/null")), Err(FileError::NotRegular { .. })));
        // The checks leave nothing behind.
        assert_eq!(entries(d), ["dangling.json", "link.json", "plain"]);
    }

    #[test]
    fn outputs_are_replaced_whole_and_leave_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        let file = OutputFile::check(&path).unwrap();
        file.write(|out: &mut dyn Write| out.write_all(b"first")).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "first");
        // A failing writer leaves the old file as it was.
        let failed = file.write(|out: &mut dyn Write| {
            out.write_all(b"half")?;
            Err(io::Error::other("the report could not be rendered"))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "first");
        assert_eq!(entries(dir.path()), ["r.json"]);
        // A link placed after the check is refused at write time too.
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", &path).unwrap();
        assert!(matches!(file.write(|out: &mut dyn Write| out.write_all(b"x")), Err(FileError::Symlink { .. })));
    }

    #[test]
    fn the_same_file_is_recognised_under_two_spellings() {
        let dir = tempfile::tempdir().unwrap();
        let a = OutputFile::check(&dir.path().join("r.json")).unwrap();
        let b = OutputFile::check(&dir.path().join(".").join("r.json")).unwrap();
        let c = OutputFile::check(&dir.path().join("h.jsonl")).unwrap();
        assert!(a.same_file(&b));
        assert!(!a.same_file(&c));
    }
}

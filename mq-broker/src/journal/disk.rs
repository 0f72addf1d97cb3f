//! The file-system seam under the journal: a directory of files that can
//! be written, synced, renamed and removed. [`FsDisk`] is the real one; the
//! tests' simulated disk (`sim.rs`) keeps only what was synced, to show what
//! a power loss leaves behind.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// One open file of a [`Disk`].
pub(crate) trait DiskFile: Send {
    /// Writes all of `buf` at `offset`.
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()>;
    /// Reads the whole file.
    fn read_all(&mut self) -> io::Result<Vec<u8>>;
    /// Makes every write so far durable (fdatasync).
    fn sync_data(&mut self) -> io::Result<()>;
    /// Cuts the file to `len` bytes.
    fn truncate(&mut self, len: u64) -> io::Result<()>;
    /// Writes `len` zero bytes at `offset`: real zeros, not a hole or an
    /// unwritten extent, so that a later write there changes no file-system
    /// metadata and its fdatasync flushes only data blocks.
    fn write_zeros(&mut self, offset: u64, len: u64) -> io::Result<()> {
        let mut done = 0;
        while done < len {
            let n = (len - done).min(ZERO_PIECE as u64);
            self.write_at(offset + done, &ZEROS[..n as usize])?;
            done += n;
        }
        Ok(())
    }
}

/// The piece size of [`DiskFile::write_zeros`].
const ZERO_PIECE: usize = 64 << 10;
static ZEROS: [u8; ZERO_PIECE] = [0; ZERO_PIECE];

/// A directory of files.
pub(crate) trait Disk: Send + Sync {
    /// File names in the directory.
    fn list(&self) -> io::Result<Vec<String>>;
    /// Creates (or empties) a file.
    fn create(&self, name: &str) -> io::Result<Box<dyn DiskFile>>;
    /// Opens an existing file for reading and writing.
    fn open(&self, name: &str) -> io::Result<Box<dyn DiskFile>>;
    /// Removes a file.
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Makes creations, renames and removals so far durable (fsync of the
    /// directory).
    fn sync_dir(&self) -> io::Result<()>;
}

/// The real file system, under one directory.
#[derive(Debug, Clone)]
pub(crate) struct FsDisk {
    dir: PathBuf,
}

impl FsDisk {
    pub(crate) fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }
}

struct FsFile(File);

impl DiskFile for FsFile {
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.0.seek(SeekFrom::Start(offset))?;
        self.0.write_all(buf)
    }

    fn read_all(&mut self) -> io::Result<Vec<u8>> {
        self.0.seek(SeekFrom::Start(0))?;
        let mut v = Vec::new();
        self.0.read_to_end(&mut v)?;
        Ok(v)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
}

impl Disk for FsDisk {
    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for e in fs::read_dir(&self.dir)? {
            if let Some(n) = e?.file_name().to_str() {
                names.push(n.to_owned());
            }
        }
        Ok(names)
    }

    fn create(&self, name: &str) -> io::Result<Box<dyn DiskFile>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(self.dir.join(name))?;
        Ok(Box::new(FsFile(f)))
    }

    fn open(&self, name: &str) -> io::Result<Box<dyn DiskFile>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.dir.join(name))?;
        Ok(Box::new(FsFile(f)))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        fs::remove_file(self.dir.join(name))
    }

    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }
}

//! A simulated disk for power-loss tests: it keeps, per file, the bytes
//! covered by the last fdatasync, and per directory the entries covered by
//! the last directory fsync. [`SimDisk::crash`] returns the disk as a
//! power loss would leave it: synced bytes intact, the unsynced tail torn
//! (a random length of it, each 512-byte sector that differs either
//! written or not, also over zeros written earlier),
//! unsynced creations gone and unsynced removals undone.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::Rng;

use super::disk::{Disk, DiskFile};

#[derive(Debug, Default, Clone)]
struct SimFile {
    durable: Vec<u8>,
    current: Vec<u8>,
}

#[derive(Debug, Default)]
struct SimState {
    files: BTreeMap<String, SimFile>,
    /// Names visible now.
    dir: BTreeSet<String>,
    /// Names that survive a crash.
    durable_dir: BTreeSet<String>,
    syncs: u64,
    dir_syncs: u64,
    /// Writes fail with "no space" while set.
    full: bool,
    /// fdatasync fails (and syncs nothing) while set.
    fail_sync: bool,
    /// How long each fdatasync takes (a slow device; zero by default).
    sync_delay: Duration,
}

/// A simulated directory. Clones share it.
#[derive(Debug, Clone, Default)]
pub(crate) struct SimDisk {
    st: Arc<Mutex<SimState>>,
}

impl SimDisk {
    fn lock(&self) -> MutexGuard<'_, SimState> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// fdatasync calls so far.
    pub(crate) fn syncs(&self) -> u64 {
        self.lock().syncs
    }

    /// Directory fsyncs so far.
    pub(crate) fn dir_syncs(&self) -> u64 {
        self.lock().dir_syncs
    }

    /// Makes writes fail with "no space left" (or succeed again).
    pub(crate) fn set_full(&self, full: bool) {
        self.lock().full = full;
    }

    /// Makes fdatasync fail (and sync nothing) from now on.
    pub(crate) fn set_fail_sync(&self, fail: bool) {
        self.lock().fail_sync = fail;
    }

    /// Makes every fdatasync take at least `d` (a slow device), so that a
    /// write's duration counts whole microseconds.
    pub(crate) fn set_sync_delay(&self, d: Duration) {
        self.lock().sync_delay = d;
    }

    /// True if some file's synced bytes contain `needle`.
    pub(crate) fn synced_contains(&self, needle: &[u8]) -> bool {
        self.lock()
            .files
            .values()
            .any(|f| f.durable.windows(needle.len()).any(|w| w == needle))
    }

    /// The disk after a power loss now.
    pub(crate) fn crash(&self, rng: &mut StdRng) -> SimDisk {
        let st = self.lock();
        let mut files = BTreeMap::new();
        for name in &st.durable_dir {
            let Some(f) = st.files.get(name) else {
                continue;
            };
            let bytes = torn(&f.durable, &f.current, rng);
            files.insert(
                name.clone(),
                SimFile {
                    durable: bytes.clone(),
                    current: bytes,
                },
            );
        }
        let names: BTreeSet<String> = files.keys().cloned().collect();
        SimDisk {
            st: Arc::new(Mutex::new(SimState {
                files,
                dir: names.clone(),
                durable_dir: names,
                syncs: 0,
                dir_syncs: 0,
                full: false,
                fail_sync: false,
                sync_delay: Duration::ZERO,
            })),
        }
    }

    /// Flips one byte of a file (bit rot), in both its synced and current
    /// content.
    pub(crate) fn corrupt(&self, name: &str, offset: usize) {
        let mut st = self.lock();
        if let Some(f) = st.files.get_mut(name) {
            if let Some(b) = f.durable.get_mut(offset) {
                *b ^= 0xFF;
            }
            if let Some(b) = f.current.get_mut(offset) {
                *b ^= 0xFF;
            }
        }
    }

    /// Overwrites `len` bytes of a file with zeros, in both its synced and
    /// current content (damage that looks like a clean end).
    pub(crate) fn zero(&self, name: &str, offset: usize, len: usize) {
        let mut st = self.lock();
        if let Some(f) = st.files.get_mut(name) {
            for v in [&mut f.durable, &mut f.current] {
                let end = (offset + len).min(v.len());
                if offset < end {
                    v[offset..end].fill(0);
                }
            }
        }
    }

    /// A file's current content.
    pub(crate) fn content(&self, name: &str) -> Option<Vec<u8>> {
        self.lock().files.get(name).map(|f| f.current.clone())
    }

    /// A file's current length.
    pub(crate) fn len(&self, name: &str) -> Option<usize> {
        self.lock().files.get(name).map(|f| f.current.len())
    }
}

/// What a power loss leaves of a file whose synced content is `durable`
/// and whose current content is `current`: a length anywhere between the
/// two, and each 512-byte sector where they differ either old or new (a
/// write into zeros written earlier can land in any subset of its sectors).
fn torn(durable: &[u8], current: &[u8], rng: &mut StdRng) -> Vec<u8> {
    let (lo, hi) = (
        durable.len().min(current.len()),
        durable.len().max(current.len()),
    );
    let len = if lo == hi { lo } else { rng.gen_range(lo..=hi) };
    let old = |i: usize| durable.get(i).copied().unwrap_or(0);
    let new = |i: usize| current.get(i).copied().unwrap_or(0);
    let mut bytes = vec![0u8; len];
    let mut sector = 0;
    while sector < len {
        let end = (sector + 512).min(len);
        let differs = (sector..end).any(|i| old(i) != new(i));
        let take_new = differs && rng.gen_bool(0.5);
        for (i, b) in bytes[sector..end].iter_mut().enumerate() {
            *b = if take_new {
                new(sector + i)
            } else {
                old(sector + i)
            };
        }
        sector = end;
    }
    bytes
}

struct SimHandle {
    disk: SimDisk,
    name: String,
}

impl SimHandle {
    fn with<T>(&self, f: impl FnOnce(&mut SimFile, &mut bool, &mut u64) -> T) -> io::Result<T> {
        let mut st = self.disk.lock();
        let SimState {
            files,
            full,
            syncs,
            fail_sync,
            ..
        } = &mut *st;
        let _ = fail_sync;
        match files.get_mut(&self.name) {
            Some(file) => Ok(f(file, full, syncs)),
            None => Err(io::Error::new(io::ErrorKind::NotFound, "removed")),
        }
    }
}

impl DiskFile for SimHandle {
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.with(|f, full, _| {
            if *full {
                return Err(io::Error::new(
                    io::ErrorKind::StorageFull,
                    "no space left (sim)",
                ));
            }
            let at = offset as usize;
            if f.current.len() < at + buf.len() {
                f.current.resize(at + buf.len(), 0);
            }
            f.current[at..at + buf.len()].copy_from_slice(buf);
            Ok(())
        })?
    }

    fn read_all(&mut self) -> io::Result<Vec<u8>> {
        self.with(|f, _, _| f.current.clone())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let (fail, delay) = {
            let st = self.disk.lock();
            (st.fail_sync, st.sync_delay)
        };
        if fail {
            return Err(io::Error::other("fdatasync failed (sim)"));
        }
        if !delay.is_zero() {
            // The device's own time, outside the disk's lock.
            std::thread::sleep(delay);
        }
        self.with(|f, _, syncs| {
            f.durable = f.current.clone();
            *syncs += 1;
        })
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.with(|f, _, _| f.current.truncate(len as usize))
    }
}

impl Disk for SimDisk {
    fn list(&self) -> io::Result<Vec<String>> {
        Ok(self.lock().dir.iter().cloned().collect())
    }

    fn create(&self, name: &str) -> io::Result<Box<dyn DiskFile>> {
        let mut st = self.lock();
        st.files.insert(name.to_owned(), SimFile::default());
        st.dir.insert(name.to_owned());
        Ok(Box::new(SimHandle {
            disk: self.clone(),
            name: name.to_owned(),
        }))
    }

    fn open(&self, name: &str) -> io::Result<Box<dyn DiskFile>> {
        if !self.lock().dir.contains(name) {
            return Err(io::Error::new(io::ErrorKind::NotFound, name.to_owned()));
        }
        Ok(Box::new(SimHandle {
            disk: self.clone(),
            name: name.to_owned(),
        }))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        self.lock().dir.remove(name);
        Ok(())
    }

    fn sync_dir(&self) -> io::Result<()> {
        let mut st = self.lock();
        st.dir_syncs += 1;
        st.durable_dir = st.dir.clone();
        let dir = st.dir.clone();
        st.files.retain(|n, _| dir.contains(n));
        Ok(())
    }
}

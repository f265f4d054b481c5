//! Heap buffers for key material and plaintext: locked into RAM while they
//! live, once the process has turned locking on ([`crate::hardening`]), and
//! wiped before they are freed.
//!
//! Why buffers and not `mlockall`: a tokio process maps far more than the
//! 64 KiB to 8 MiB a container may usually lock, and with `MCL_FUTURE` an
//! allocation past that limit fails, which aborts the process. Locking the
//! few pages that hold secrets fits those limits and fails softly: the
//! buffer stays usable, unlocked, and the process warns once.
//!
//! `mlock` works on whole pages and does not nest: unlocking one buffer
//! would unlock a neighbour sharing its page. So pages are counted here, and
//! a page is unlocked only when the last locked buffer on it is freed.
//!
//! A buffer never grows or moves (a `Box`, filled in place), so no copy is
//! left behind in memory the allocator reuses. This is the one module of
//! Keyward with `unsafe`: `mlock` and `munlock` take raw pointers.
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use zeroize::Zeroize;

/// A boxed value that is locked into RAM (when locking is on) and wiped
/// before it is freed.
pub(crate) struct Locked<T: ?Sized + Zeroize> {
    data: Box<T>,
    locked: bool,
    /// What the buffer holds, for the warning if it cannot be locked.
    what: &'static str,
}

impl<const N: usize> Locked<[u8; N]> {
    /// `N` zero bytes, locked before the caller writes a secret into them.
    pub(crate) fn zeroed(what: &'static str) -> Self {
        Self::lock(Box::new([0u8; N]), what)
    }
}

impl Locked<[u8]> {
    /// A locked copy of `bytes`.
    pub(crate) fn copy_of(bytes: &[u8], what: &'static str) -> Self {
        // `vec!` allocates exactly `len` bytes, so the box is the same block.
        let mut locked = Self::lock(vec![0u8; bytes.len()].into_boxed_slice(), what);
        locked.data.copy_from_slice(bytes);
        locked
    }
}

impl<T: ?Sized + Zeroize> Locked<T> {
    fn lock(data: Box<T>, what: &'static str) -> Self {
        let mut this = Locked {
            data,
            locked: false,
            what,
        };
        let (start, len) = this.block();
        this.locked = len > 0 && lock_span(start, len, what);
        this
    }

    /// The heap block behind the box (moving the box does not move it).
    fn block(&self) -> (*const u8, usize) {
        let data: &T = &self.data;
        (
            std::ptr::from_ref(data).cast::<u8>(),
            std::mem::size_of_val(data),
        )
    }

    pub(crate) fn expose(&self) -> &T {
        &self.data
    }

    pub(crate) fn expose_mut(&mut self) -> &mut T {
        &mut self.data
    }
}

impl<const N: usize> Clone for Locked<[u8; N]> {
    fn clone(&self) -> Self {
        let mut copy = Self::zeroed(self.what);
        copy.data.copy_from_slice(&self.data[..]);
        copy
    }
}

impl Clone for Locked<[u8]> {
    fn clone(&self) -> Self {
        Self::copy_of(&self.data, self.what)
    }
}

impl<T: ?Sized + Zeroize> Drop for Locked<T> {
    fn drop(&mut self) {
        // Wiped while still locked; the box frees the block afterwards.
        self.data.zeroize();
        if self.locked {
            let (start, len) = self.block();
            unlock_span(start, len);
        }
    }
}

/// A lock the kernel refused.
pub(crate) struct Refusal {
    pub what: &'static str,
    pub bytes: usize,
    pub error: std::io::Error,
}

/// Told about the first refusal only.
pub(crate) type RefusalSink = Box<dyn Fn(&Refusal) + Send + Sync>;

static ENABLED: AtomicBool = AtomicBool::new(false);
static REFUSED: AtomicU64 = AtomicU64::new(0);
static SINK: OnceLock<RefusalSink> = OnceLock::new();
/// Locked page address -> live locked buffers on it.
static PAGES: Mutex<BTreeMap<usize, u32>> = Mutex::new(BTreeMap::new());

/// Buffers made from now on are locked; `sink` hears of the first refusal.
/// Buffers made before stay as they are. Later calls keep the first sink.
pub(crate) fn enable(sink: RefusalSink) {
    let _ = SINK.set(sink);
    ENABLED.store(true, Ordering::SeqCst);
}

/// What this process has locked so far.
pub(crate) struct State {
    pub enabled: bool,
    /// Buffers the kernel refused to lock.
    pub refused: u64,
    /// Pages locked now.
    pub pages: usize,
}

pub(crate) fn state() -> State {
    State {
        enabled: ENABLED.load(Ordering::SeqCst),
        refused: REFUSED.load(Ordering::SeqCst),
        pages: PAGES.lock().unwrap_or_else(PoisonError::into_inner).len(),
    }
}

pub(crate) use sys::page_size;

fn pages_of(start: *const u8, len: usize) -> impl Iterator<Item = usize> {
    let page = page_size();
    let first = start as usize & !(page - 1);
    let last = (start as usize + len - 1) & !(page - 1);
    (first..=last).step_by(page)
}

/// Locks the pages under `start..start + len` (a live allocation of ours);
/// false if locking is off or the kernel refused.
fn lock_span(start: *const u8, len: usize, what: &'static str) -> bool {
    if !ENABLED.load(Ordering::Relaxed) {
        return false;
    }
    let mut pages = PAGES.lock().unwrap_or_else(PoisonError::into_inner);
    // Pages that already hold a locked buffer need no system call.
    let result = if pages_of(start, len).all(|page| pages.contains_key(&page)) {
        Ok(())
    } else {
        // SAFETY: `start..start + len` is one live allocation owned by the
        // caller. The kernel rounds the range out to whole pages, which are
        // mapped since the allocation lies in them, and only pins them in
        // RAM: no byte is read or written. Pages already locked are locked
        // again, which the kernel counts once.
        unsafe { sys::lock(start, len) }
    };
    match result {
        Ok(()) => {
            for page in pages_of(start, len) {
                *pages.entry(page).or_default() += 1;
            }
            true
        }
        Err(error) => {
            drop(pages);
            if REFUSED.fetch_add(1, Ordering::SeqCst) == 0
                && let Some(sink) = SINK.get()
            {
                sink(&Refusal {
                    what,
                    bytes: len,
                    error,
                });
            }
            false
        }
    }
}

/// Undoes [`lock_span`]: pages no other locked buffer uses are unlocked.
fn unlock_span(start: *const u8, len: usize) {
    let page_len = page_size();
    let end = start as usize + len;
    let mut pages = PAGES.lock().unwrap_or_else(PoisonError::into_inner);
    for page in pages_of(start, len) {
        let Some(count) = pages.get_mut(&page) else {
            continue;
        };
        *count -= 1;
        if *count > 0 {
            continue;
        }
        pages.remove(&page);
        // The part of this allocation on `page`: the kernel unlocks the
        // whole page from any pointer into it.
        let from = page.max(start as usize);
        let to = (page + page_len).min(end);
        // SAFETY: `from..to` lies within the caller's live allocation (it is
        // freed only after this returns); munlock only unpins its page.
        let offset = from - start as usize;
        let _ = unsafe { sys::unlock(start.add(offset), to - from) };
    }
}

#[cfg(unix)]
mod sys {
    pub fn page_size() -> usize {
        rustix::param::page_size()
    }

    /// # Safety
    /// `start..start + len` is a live allocation of the caller's.
    pub unsafe fn lock(start: *const u8, len: usize) -> std::io::Result<()> {
        // SAFETY: as the caller promised.
        Ok(unsafe { rustix::mm::mlock(start.cast_mut().cast(), len) }?)
    }

    /// # Safety
    /// As for [`lock`].
    pub unsafe fn unlock(start: *const u8, len: usize) -> std::io::Result<()> {
        // SAFETY: as the caller promised.
        Ok(unsafe { rustix::mm::munlock(start.cast_mut().cast(), len) }?)
    }
}

/// Nothing to lock with: every buffer is refused, so the process says so.
#[cfg(not(unix))]
mod sys {
    pub fn page_size() -> usize {
        4096
    }

    pub unsafe fn lock(_: *const u8, _: usize) -> std::io::Result<()> {
        Err(std::io::ErrorKind::Unsupported.into())
    }

    pub unsafe fn unlock(_: *const u8, _: usize) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_hold_their_bytes_and_clone_into_new_blocks() {
        let mut key = Locked::<[u8; 4]>::zeroed("test");
        key.expose_mut().copy_from_slice(b"abcd");
        let copy = key.clone();
        assert_eq!(copy.expose(), b"abcd");
        assert_ne!(copy.block().0, key.block().0);
        assert_eq!(key.block(), (key.expose().as_ptr(), 4));
        let bytes = Locked::copy_of(b"value", "test");
        assert_eq!(bytes.clone().expose(), b"value");
        let empty = Locked::copy_of(b"", "test");
        assert!(empty.expose().is_empty() && !empty.locked);
    }

    #[test]
    fn a_span_covers_every_page_it_touches() {
        let page = page_size();
        let pages: Vec<usize> = pages_of((page * 3 - 1) as *const u8, 2).collect();
        assert_eq!(pages, [page * 2, page * 3]);
        let pages: Vec<usize> = pages_of((page * 3) as *const u8, page).collect();
        assert_eq!(pages, [page * 3]);
    }
}

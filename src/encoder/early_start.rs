//! When a kernel may start before the previous kernel on its stream has
//! finished (programmatic dependent launch), so that its loads of the
//! buffers it reads early (`KernelArg::ReadEarly`) overlap that kernel's
//! tail.
//!
//! Such a kernel calls `wait_previous_kernel()` before touching anything
//! else and `release_next_kernel()` only after it, so when it starts, the
//! kernel two back has finished unless the previous one itself started
//! early. Its early reads are therefore safe when they overlap no buffer of
//! the previous kernel and, if that one started early too, none of the one
//! before it. Kernels write only through their buffer arguments. The record
//! is only trusted while nothing but this encoder's kernels was queued on
//! the stream since them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::MAX_KERNEL_ARGS;

/// The device memory of one launch's buffer arguments: `(start, end,
/// read_early)` address ranges.
#[derive(Clone, Copy)]
pub(super) struct Footprint {
    ranges: [(u64, u64, bool); MAX_KERNEL_ARGS],
    len: usize,
}

impl Footprint {
    pub(super) const EMPTY: Footprint = Footprint {
        ranges: [(0, 0, false); MAX_KERNEL_ARGS],
        len: 0,
    };

    pub(super) fn push(&mut self, address: u64, bytes: usize, read_early: bool) {
        self.ranges[self.len] = (address, address + bytes as u64, read_early);
        self.len += 1;
    }

    fn ranges(&self) -> &[(u64, u64, bool)] {
        &self.ranges[..self.len]
    }

    pub(super) fn reads_early(&self) -> bool {
        self.ranges().iter().any(|r| r.2)
    }

    /// Whether none of `next`'s early reads overlaps any buffer of this launch.
    fn allows_early_reads_of(&self, next: &Footprint) -> bool {
        next.ranges()
            .iter()
            .filter(|n| n.2)
            .all(|n| self.ranges().iter().all(|r| n.1 <= r.0 || r.1 <= n.0))
    }
}

/// An encoder's record of the last two kernels it queued on its stream.
pub(super) struct RecentKernels {
    /// The last kernel and whether it started early, then the one before.
    last: Option<(Footprint, bool)>,
    before: Option<Footprint>,
    /// Set by stream work queued outside the encoder's view (scratch
    /// allocated or freed in stream order), which makes the record stale.
    unseen_work: Arc<AtomicBool>,
}

impl RecentKernels {
    pub(super) fn new() -> RecentKernels {
        RecentKernels {
            last: None,
            before: None,
            unseen_work: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The flag that stream work the encoder does not queue itself sets.
    pub(super) fn unseen_work(&self) -> &Arc<AtomicBool> {
        &self.unseen_work
    }

    pub(super) fn forget(&mut self) {
        self.last = None;
        self.before = None;
    }

    /// Forgets the record when stream work outside the encoder's view was
    /// queued since it was last read.
    fn catch_up(&mut self) {
        if self.unseen_work.swap(false, Ordering::AcqRel) {
            self.forget();
        }
    }

    /// Whether a kernel with `next`'s buffers may start early now.
    pub(super) fn allow_early(&mut self, next: &Footprint) -> bool {
        self.catch_up();
        match &self.last {
            None => false,
            Some((last, last_early)) => {
                last.allows_early_reads_of(next)
                    && (!last_early || self.before.is_some_and(|b| b.allows_early_reads_of(next)))
            }
        }
    }

    /// Records a launch of a kernel with `footprint`; one that failed
    /// leaves the stream's state unknown.
    pub(super) fn record(&mut self, queued: bool, footprint: Footprint, early: bool) {
        self.catch_up();
        if queued {
            self.before = self.last.map(|(f, _)| f);
            self.last = Some((footprint, early));
        } else {
            self.forget();
        }
    }
}

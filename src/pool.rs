//! `MlxBufferPool`: power-of-two bucketed reuse of device allocations.
//!
//! The per-step arena pattern: take buffers with [`MlxBufferPool::alloc`]
//! during a step, then [`MlxBufferPool::reset`] makes every buffer handed out
//! since the last reset available again. A buffer taken from the pool must
//! not be used after the reset that reclaims it (its memory stays valid,
//! but a later `alloc` may hand it out again). Pool buffers are not zeroed.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::buffer::{element_count_of, MlxBuffer, Storage};
use crate::{DType, MlxDevice, Result};

/// Counters of a pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PoolStats {
    /// Fresh device allocations made.
    pub allocations: u64,
    /// Requests served from a free allocation.
    pub reuses: u64,
    /// Buffers handed out since the last reset.
    pub in_use: usize,
    /// Allocations waiting on free lists.
    pub free: usize,
    /// Bytes of every allocation the pool holds (in use and free).
    pub bytes_held: usize,
}

pub struct MlxBufferPool {
    device: MlxDevice,
    free: BTreeMap<usize, Vec<Arc<Storage>>>,
    in_use: Vec<Arc<Storage>>,
    stats: PoolStats,
}

impl MlxBufferPool {
    pub fn new(device: &MlxDevice) -> MlxBufferPool {
        MlxBufferPool {
            device: device.clone(),
            free: BTreeMap::new(),
            in_use: Vec::new(),
            stats: PoolStats::default(),
        }
    }

    /// A buffer of `dtype` and `shape` backed by an allocation of the next
    /// power of two bytes. Its contents are unspecified.
    pub fn alloc(&mut self, dtype: DType, shape: &[usize]) -> Result<MlxBuffer> {
        let n = element_count_of("MlxBufferPool::alloc", dtype, shape)?;
        let bucket = (n * dtype.size_of()).next_power_of_two();
        let storage = match self.free.get_mut(&bucket).and_then(Vec::pop) {
            Some(s) => {
                self.stats.reuses += 1;
                s
            }
            None => {
                let s = Storage::new(&self.device, bucket, false)?;
                self.stats.allocations += 1;
                self.stats.bytes_held += bucket;
                s
            }
        };
        self.in_use.push(storage.clone());
        Ok(MlxBuffer::on_storage(storage, dtype, shape))
    }

    /// Returns every buffer handed out since the last reset to the free lists.
    pub fn reset(&mut self) {
        for s in self.in_use.drain(..) {
            self.free.entry(s.bytes).or_default().push(s);
        }
    }

    /// Releases the free allocations back to the device.
    pub fn release_free(&mut self) {
        let freed: usize = self.free.values().flatten().map(|s| s.bytes).sum();
        self.free.clear();
        self.stats.bytes_held -= freed;
    }

    pub fn stats(&self) -> PoolStats {
        PoolStats {
            in_use: self.in_use.len(),
            free: self.free.values().map(Vec::len).sum(),
            ..self.stats
        }
    }
}

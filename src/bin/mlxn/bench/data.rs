//! Seeded benchmark inputs: finite and varied values (speed does not depend
//! on them, but all-zero data can take shortcuts).

/// A seeded xorshift64 stream.
pub struct Xorshift(u64);

impl Xorshift {
    pub fn new(seed: u64) -> Xorshift {
        Xorshift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32)
    }
}

/// `len` values uniform in [lo, hi).
pub fn uniform_values(len: usize, lo: f32, hi: f32, seed: u64) -> Vec<f32> {
    let mut rng = Xorshift::new(seed);
    (0..len).map(|_| rng.uniform(lo, hi)).collect()
}

/// Random GGML block bytes that decode to finite values: clearing bit 14 of
/// every u16 keeps each f16 scale's exponent below 16.
pub fn ggml_bytes(bytes: usize, seed: u64) -> Vec<u8> {
    let mut rng = Xorshift::new(seed);
    let mut v: Vec<u8> = (0..bytes).map(|_| rng.next_u64() as u8).collect();
    for pair in v.chunks_exact_mut(2) {
        pair[1] &= 0xBF;
    }
    v
}

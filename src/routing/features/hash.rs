//! Hashing of words and n-grams into the model's table: FNV-1a with a seed per kind, then
//! a multiplicative fold to `bits` bits. The seeds are part of the model: changing one
//! changes every hashed weight's meaning.

use std::hash::Hasher;

pub const RAW_SEED: u64 = 0xcbf2_9ce4_8422_2325;
pub const STEM_SEED: u64 = 0x9e37_79b9_7f4a_7c15;
pub const FIRST_SEED: u64 = 0x2545_f491_4f6c_dd1d;
pub const CHAR_SEED: u64 = 0x6a09_e667_f3bc_c909;

pub fn fnv(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = seed;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The table slot of hash `h` in a table of `2^bits`.
pub fn index(h: u64, bits: u32) -> u32 {
    (h.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - bits)) as u32
}

/// The hash is already a hash.
#[derive(Default)]
pub struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

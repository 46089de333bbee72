//! CRC-32C near memory speed on x86-64 CPUs with 256-bit carry-less multiply.
//!
//! The `crc32c` crate runs three streams of the `crc32` instruction, which
//! cannot go past 8 bytes a cycle (15-21 GB/s on the 2-core EPYC of
//! BENCHMARKS.md, where memcpy does 31). Its SIMD rival, `crc-fast`, was no
//! faster there. The checksum is paid on every byte written and every byte
//! read, so this module keeps both kinds of unit busy at once, after Peter
//! Cawley's fast-crc32 ("v4s3x3"): in every step, carry-less multiplication
//! folds 128 bytes in the vector unit while three `crc32` streams take 144
//! more in the integer units. A block of [`STEPS`] steps ends by merging the
//! four partial checksums, so every merge constant is known at compile time.
//!
//! Other CPUs and whatever is left after the last whole block go to the
//! `crc32c` crate; the tests hold both paths to it.

/// Checksum of `bytes` continuing from `crc` (0 to start), as
/// `crc32c::crc32c_append`.
pub fn crc32c_append(mut crc: u32, mut bytes: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if bytes.len() >= fast::BLOCK && fast::available() {
        while bytes.len() >= fast::BLOCK {
            let (block, rest) = bytes.split_at(fast::BLOCK);
            // SAFETY: `available` checked every feature the function enables.
            crc = !unsafe { fast::block(!crc, block) };
            bytes = rest;
        }
    }
    crc32c::crc32c_append(crc, bytes)
}

/// The fast path's unit: a caller that checksums piece by piece while doing
/// other work on the same bytes should use pieces of this many.
#[cfg(target_arch = "x86_64")]
pub const BLOCK: usize = fast::BLOCK;
#[cfg(not(target_arch = "x86_64"))]
pub const BLOCK: usize = 16 << 10;

/// Whether this CPU takes the fast path.
pub fn accelerated() -> bool {
    #[cfg(target_arch = "x86_64")]
    return fast::available();
    #[cfg(not(target_arch = "x86_64"))]
    return false;
}

/// Steps per block: enough that the merge at its end costs about 1 % of it.
const STEPS: usize = 64;

/// CRC-32C's polynomial, bit-reflected.
const POLY: u32 = 0x82F6_3B78;

/// `a * b mod P` for bit-reflected polynomials (bit 31 is `x^0`).
const fn mul_mod(a: u32, b: u32) -> u32 {
    let (mut product, mut a, mut bit) = (0u32, a, 0);
    while bit < 32 {
        if b & (0x8000_0000 >> bit) != 0 {
            product ^= a;
        }
        a = if a & 1 != 0 { (a >> 1) ^ POLY } else { a >> 1 };
        bit += 1;
    }
    product
}

/// `x^n mod P`, bit-reflected.
const fn x_pow_mod(mut n: u64) -> u32 {
    let (mut result, mut square) = (0x8000_0000u32, 0x4000_0000u32);
    while n > 0 {
        if n & 1 == 1 {
            result = mul_mod(result, square);
        }
        square = mul_mod(square, square);
        n >>= 1;
    }
    result
}

/// The pair of multipliers that moves a 128-bit lane `bytes` further on.
const fn fold_constants(bytes: usize) -> (u32, u32) {
    let bits = 8 * bytes as u64;
    (x_pow_mod(bits + 31), x_pow_mod(bits - 33))
}

/// The multiplier that moves a 32-bit checksum `bytes` further on, into the
/// 64 bits that are then xored onto the data at that distance.
const fn shift_constant(bytes: usize) -> u32 {
    x_pow_mod(8 * bytes as u64 - 33)
}

#[cfg(target_arch = "x86_64")]
mod fast {
    use std::arch::x86_64::*;

    use super::{fold_constants, shift_constant, STEPS};

    /// Bytes folded by carry-less multiplication per step: four 32-byte registers.
    const VECTOR: usize = 128;
    /// Bytes each of the three `crc32` streams takes per step.
    const SCALAR: usize = 48;
    /// Bytes of each region of a block.
    const VECTOR_LEN: usize = STEPS * VECTOR;
    const SCALAR_LEN: usize = STEPS * SCALAR;
    /// The 8 bytes at the end of a block, into which the partial checksums merge.
    const TAIL: usize = 8;
    /// A block: the vector region, three scalar regions, the tail.
    pub const BLOCK: usize = VECTOR_LEN + 3 * SCALAR_LEN + TAIL;

    const FOLD_STEP: (u32, u32) = fold_constants(VECTOR);
    const FOLD_LANE: (u32, u32) = fold_constants(16);
    const SHIFT_VECTOR: u32 = shift_constant(3 * SCALAR_LEN + TAIL);
    const SHIFT_SCALAR_0: u32 = shift_constant(2 * SCALAR_LEN + TAIL);
    const SHIFT_SCALAR_1: u32 = shift_constant(SCALAR_LEN + TAIL);

    /// Whether this CPU has every instruction [`block`] uses (the answer is cached by std).
    pub fn available() -> bool {
        is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("vpclmulqdq")
            && is_x86_feature_detected!("pclmulqdq")
            && is_x86_feature_detected!("sse4.2")
    }

    /// The raw (un-inverted) checksum state after one [`BLOCK`]-byte block.
    ///
    /// # Safety
    /// The CPU must have the features [`available`] checks.
    #[target_feature(enable = "avx2,vpclmulqdq,pclmulqdq,sse4.2")]
    pub unsafe fn block(crc: u32, block: &[u8]) -> u32 {
        assert_eq!(block.len(), BLOCK);
        let (vector, scalar) = block.split_at(VECTOR_LEN);
        let (s0, scalar) = scalar.split_at(SCALAR_LEN);
        let (s1, scalar) = scalar.split_at(SCALAR_LEN);
        let (s2, tail) = scalar.split_at(SCALAR_LEN);

        let mut steps = vector.chunks_exact(VECTOR);
        let mut x = load_step(steps.next().expect("a block has steps"));
        x[0] = _mm256_xor_si256(x[0], _mm256_zextsi128_si256(_mm_cvtsi32_si128(crc as i32)));
        let k = _mm256_broadcastsi128_si256(pair(FOLD_STEP));
        let (mut c0, mut c1, mut c2) = (0u64, 0u64, 0u64);
        let streams = s0.chunks_exact(SCALAR).zip(s1.chunks_exact(SCALAR)).zip(s2.chunks_exact(SCALAR));
        for ((a, b), c) in streams {
            if let Some(step) = steps.next() {
                let data = load_step(step);
                for (acc, data) in x.iter_mut().zip(data) {
                    *acc = fold256(*acc, k, data);
                }
            }
            for ((a, b), c) in a.chunks_exact(8).zip(b.chunks_exact(8)).zip(c.chunks_exact(8)) {
                c0 = _mm_crc32_u64(c0, word(a));
                c1 = _mm_crc32_u64(c1, word(b));
                c2 = _mm_crc32_u64(c2, word(c));
            }
        }
        let v = reduce(x);
        let merged = shift(v, SHIFT_VECTOR) ^ shift(c0 as u32, SHIFT_SCALAR_0) ^ shift(c1 as u32, SHIFT_SCALAR_1);
        _mm_crc32_u64(c2, word(tail) ^ merged) as u32
    }

    #[target_feature(enable = "avx2")]
    fn load_step(step: &[u8]) -> [__m256i; 4] {
        let lane = |i: usize| {
            let bytes: &[u8; 32] = step[32 * i..32 * (i + 1)].try_into().expect("32 bytes");
            // SAFETY: 32 readable bytes; the load is unaligned.
            unsafe { _mm256_loadu_si256(bytes.as_ptr().cast()) }
        };
        [lane(0), lane(1), lane(2), lane(3)]
    }

    fn word(bytes: &[u8]) -> u64 {
        u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"))
    }

    #[target_feature(enable = "sse2")]
    fn pair((lo, hi): (u32, u32)) -> __m128i {
        _mm_set_epi64x(i64::from(hi), i64::from(lo))
    }

    /// Moves each 128-bit lane of `x` one step on and adds the data there.
    #[target_feature(enable = "avx2,vpclmulqdq")]
    fn fold256(x: __m256i, k: __m256i, data: __m256i) -> __m256i {
        let lo = _mm256_clmulepi64_epi128(x, k, 0x00);
        let hi = _mm256_clmulepi64_epi128(x, k, 0x11);
        _mm256_xor_si256(_mm256_xor_si256(lo, hi), data)
    }

    #[target_feature(enable = "sse2,pclmulqdq")]
    fn fold128(x: __m128i, k: __m128i, data: __m128i) -> __m128i {
        let lo = _mm_clmulepi64_si128(x, k, 0x00);
        let hi = _mm_clmulepi64_si128(x, k, 0x11);
        _mm_xor_si128(_mm_xor_si128(lo, hi), data)
    }

    /// Folds the eight 16-byte lanes, oldest first, into one, then to 32 bits.
    #[target_feature(enable = "avx2,pclmulqdq,sse4.2")]
    fn reduce(x: [__m256i; 4]) -> u32 {
        let k = pair(FOLD_LANE);
        let mut acc = _mm256_castsi256_si128(x[0]);
        acc = fold128(acc, k, _mm256_extracti128_si256(x[0], 1));
        for &register in &x[1..] {
            acc = fold128(acc, k, _mm256_castsi256_si128(register));
            acc = fold128(acc, k, _mm256_extracti128_si256(register, 1));
        }
        let lo = _mm_crc32_u64(0, _mm_extract_epi64(acc, 0) as u64);
        _mm_crc32_u64(lo, _mm_extract_epi64(acc, 1) as u64) as u32
    }

    /// `crc` moved on by the distance `k` stands for: 64 bits to xor onto the data there.
    #[target_feature(enable = "sse2,pclmulqdq")]
    fn shift(crc: u32, k: u32) -> u64 {
        let product = _mm_clmulepi64_si128(_mm_cvtsi32_si128(crc as i32), _mm_cvtsi32_si128(k as i32), 0x00);
        _mm_cvtsi128_si64(product) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Bytes that are not a repeating pattern, so a misplaced fold shows.
    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    #[test]
    fn check_value_of_the_standard() {
        assert_eq!(crc32c_append(0, b"123456789"), 0xE306_9283);
    }

    #[test]
    fn the_constants_match_published_ones() {
        // Cawley's fast-crc32 folds 64 bytes with these (x^543, x^479 mod P).
        assert_eq!(fold_constants(64), (0x740e_ef02, 0x9e4a_ddf8));
    }

    #[test]
    fn whole_blocks_and_their_edges_match_the_crate() {
        #[cfg(target_arch = "x86_64")]
        let block = fast::BLOCK;
        #[cfg(not(target_arch = "x86_64"))]
        let block = 4096;
        let data = noise(3 * block + 100, 1);
        for len in [0, 1, block - 1, block, block + 1, block + 8, 2 * block, 2 * block + 99, 3 * block] {
            for start in [0, 1, 7] {
                let bytes = &data[start..start + len];
                assert_eq!(crc32c_append(0, bytes), crc32c::crc32c(bytes), "len {len} start {start}");
                assert_eq!(crc32c_append(0xdead_beef, bytes), crc32c::crc32c_append(0xdead_beef, bytes));
            }
        }
    }

    #[test]
    fn a_megabyte_matches_the_crate() {
        let data = noise(1 << 20, 2);
        assert_eq!(crc32c_append(0, &data), crc32c::crc32c(&data));
    }

    proptest! {
        #[test]
        fn any_input_matches_the_crate(seed in any::<u64>(), len in 0usize..70_000, start in 0usize..64, crc in any::<u32>()) {
            let data = noise(start + len, seed);
            let bytes = &data[start..];
            prop_assert_eq!(crc32c_append(crc, bytes), crc32c::crc32c_append(crc, bytes));
        }

        #[test]
        fn any_bit_flip_changes_it(seed in any::<u64>(), bit in any::<prop::sample::Index>()) {
            let mut data = noise(40_000, seed);
            let before = crc32c_append(0, &data);
            let bit = bit.index(data.len() * 8);
            data[bit / 8] ^= 1 << (bit % 8);
            prop_assert_ne!(crc32c_append(0, &data), before);
        }
    }
}

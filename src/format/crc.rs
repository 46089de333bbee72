//! CRC-32C near memory speed on x86-64 CPUs with vector carry-less multiply.
//!
//! The `crc32c` crate runs three streams of the `crc32` instruction, which
//! cannot go past 8 bytes a cycle (15-21 GB/s on the 2-core EPYC of
//! BENCHMARKS.md, where memcpy does 31). Its SIMD rival, `crc-fast`, was no
//! faster there. The checksum is paid on every byte written and every byte
//! read, so this module keeps both kinds of unit busy at once, after Peter
//! Cawley's fast-crc32 ("v4s3x3"): in every step, carry-less multiplication
//! folds 128 bytes in four 256-bit registers (256 bytes in four 512-bit ones
//! where the CPU has AVX-512) while three `crc32` streams take 144 more in
//! the integer units. A block of [`STEPS`] steps ends by merging the four
//! partial checksums, so every merge constant is known at compile time.
//!
//! Other CPUs and whatever is left after the last whole block go to the
//! `crc32c` crate; the tests hold every path this CPU has to it.

/// Checksum of `bytes` continuing from `crc` (0 to start), as
/// `crc32c::crc32c_append`.
pub fn crc32c_append(crc: u32, bytes: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if bytes.len() >= fast::Kernel::SHORTEST_BLOCK {
        return fast::append_with(fast::Kernel::detect(), crc, bytes);
    }
    crc32c::crc32c_append(crc, bytes)
}

/// The fast path's unit on this CPU: a caller that checksums piece by piece
/// while doing other work on the same bytes should use pieces of this many.
pub fn block_len() -> usize {
    #[cfg(target_arch = "x86_64")]
    if let Some(kernel) = fast::Kernel::detect() {
        return kernel.block_len();
    }
    16 << 10
}

/// How this CPU computes the checksum, for benchmark output.
pub fn kernel_name() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    match fast::Kernel::detect() {
        Some(fast::Kernel::Ymm) => return "256-bit carry-less multiply and crc32 together",
        Some(fast::Kernel::Zmm) => return "512-bit carry-less multiply and crc32 together",
        None => {}
    }
    "the crc32c crate (this CPU lacks VPCLMULQDQ or AVX2)"
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

    /// The vector unit this CPU folds with.
    #[derive(Copy, Clone, Debug, PartialEq, Eq)]
    pub enum Kernel {
        /// Four 256-bit registers (AVX2 and VPCLMULQDQ: Zen 3, Ice Lake on).
        Ymm,
        /// Four 512-bit registers (AVX-512 too: Zen 4, Ice Lake server on).
        /// On the Zen 4 of BENCHMARKS.md it ran 1.3-1.5x the `Ymm` kernel.
        Zmm,
    }

    impl Kernel {
        /// Inputs shorter than this have no whole block for any kernel.
        pub const SHORTEST_BLOCK: usize = Kernel::Ymm.block_len();

        /// The widest kernel this CPU has every instruction of.
        pub fn detect() -> Option<Kernel> {
            Kernel::supported().last()
        }

        /// Every kernel this CPU has every instruction of, narrowest first
        /// (std caches the answers).
        pub fn supported() -> impl DoubleEndedIterator<Item = Kernel> {
            let ymm = is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("vpclmulqdq")
                && is_x86_feature_detected!("pclmulqdq")
                && is_x86_feature_detected!("sse4.2");
            let zmm = ymm && is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vl");
            [(Kernel::Ymm, ymm), (Kernel::Zmm, zmm)].into_iter().filter(|(_, has)| *has).map(|(kernel, _)| kernel)
        }

        /// The bytes [`Kernel::block`] takes.
        pub const fn block_len(self) -> usize {
            match self {
                Kernel::Ymm => Layout::of::<Ymm4>().block,
                Kernel::Zmm => Layout::of::<Zmm4>().block,
            }
        }

        /// The raw (un-inverted) checksum state after one block of
        /// [`Kernel::block_len`] bytes.
        pub fn block(self, crc: u32, block: &[u8]) -> u32 {
            // SAFETY: a `Kernel` is only made by `supported`, which checked
            // every feature the function enables.
            unsafe {
                match self {
                    Kernel::Ymm => block_ymm(crc, block),
                    Kernel::Zmm => block_zmm(crc, block),
                }
            }
        }
    }

    /// Whole blocks through `kernel` (if any), the rest through the crate.
    pub fn append_with(kernel: Option<Kernel>, mut crc: u32, mut bytes: &[u8]) -> u32 {
        if let Some(kernel) = kernel {
            while bytes.len() >= kernel.block_len() {
                let (block, rest) = bytes.split_at(kernel.block_len());
                crc = !kernel.block(!crc, block);
                bytes = rest;
            }
        }
        crc32c::crc32c_append(crc, bytes)
    }

    /// Bytes each of the three `crc32` streams takes per step.
    const SCALAR: usize = 48;
    const SCALAR_LEN: usize = STEPS * SCALAR;
    /// The 8 bytes at the end of a block, into which the partial checksums merge.
    const TAIL: usize = 8;
    const SHIFT_SCALAR_0: u32 = shift_constant(2 * SCALAR_LEN + TAIL);
    const SHIFT_SCALAR_1: u32 = shift_constant(SCALAR_LEN + TAIL);
    const SHIFT_VECTOR: u32 = shift_constant(3 * SCALAR_LEN + TAIL);
    const FOLD_LANE: (u32, u32) = fold_constants(16);

    /// A block: the vector region, three scalar regions, the tail.
    struct Layout {
        vector: usize,
        block: usize,
    }

    impl Layout {
        const fn of<F: Folds>() -> Layout {
            let vector = STEPS * F::STEP;
            Layout { vector, block: vector + 3 * SCALAR_LEN + TAIL }
        }
    }

    /// The carry-less multiply half of a step, on four registers of one width.
    /// Each implementation enables its width's features and is inlined into
    /// the block function that enables the same ones; their constants must be
    /// `const` blocks, or they are computed on every step (100x slower).
    trait Folds: Copy {
        /// Bytes one step folds.
        const STEP: usize;
        /// The first step's bytes with the incoming checksum state added.
        unsafe fn start(step: &[u8], crc: u32) -> Self;
        /// Moves every 128-bit lane one step on and adds the next step's bytes.
        unsafe fn fold(self, step: &[u8]) -> Self;
        /// Folds every lane, oldest first, into one, and that to 32 bits.
        unsafe fn reduce(self) -> u32;
    }

    #[derive(Copy, Clone)]
    struct Ymm4([__m256i; 4]);

    #[derive(Copy, Clone)]
    struct Zmm4([__m512i; 4]);

    impl Folds for Ymm4 {
        const STEP: usize = 128;

        #[inline]
        #[target_feature(enable = "avx2,vpclmulqdq,pclmulqdq,sse4.2")]
        unsafe fn start(step: &[u8], crc: u32) -> Ymm4 {
            let [x0, x1, x2, x3] = load(step);
            Ymm4([_mm256_xor_si256(x0, _mm256_zextsi128_si256(_mm_cvtsi32_si128(crc as i32))), x1, x2, x3])
        }

        #[inline]
        #[target_feature(enable = "avx2,vpclmulqdq,pclmulqdq,sse4.2")]
        unsafe fn fold(self, step: &[u8]) -> Ymm4 {
            let k = _mm256_broadcastsi128_si256(pair(const { fold_constants(Self::STEP) }));
            let [d0, d1, d2, d3] = load(step);
            let [x0, x1, x2, x3] = self.0;
            Ymm4([fold256(x0, k, d0), fold256(x1, k, d1), fold256(x2, k, d2), fold256(x3, k, d3)])
        }

        #[inline]
        #[target_feature(enable = "avx2,vpclmulqdq,pclmulqdq,sse4.2")]
        unsafe fn reduce(self) -> u32 {
            let k = pair(FOLD_LANE);
            let mut acc = _mm256_castsi256_si128(self.0[0]);
            acc = fold128(acc, k, _mm256_extracti128_si256(self.0[0], 1));
            for register in &self.0[1..] {
                acc = fold128(acc, k, _mm256_castsi256_si128(*register));
                acc = fold128(acc, k, _mm256_extracti128_si256(*register, 1));
            }
            to_u32(acc)
        }
    }

    impl Folds for Zmm4 {
        const STEP: usize = 256;

        #[inline]
        #[target_feature(enable = "avx512f,avx512vl,avx2,vpclmulqdq,pclmulqdq,sse4.2")]
        unsafe fn start(step: &[u8], crc: u32) -> Zmm4 {
            let [x0, x1, x2, x3] = load(step);
            Zmm4([_mm512_xor_si512(x0, _mm512_zextsi128_si512(_mm_cvtsi32_si128(crc as i32))), x1, x2, x3])
        }

        #[inline]
        #[target_feature(enable = "avx512f,avx512vl,avx2,vpclmulqdq,pclmulqdq,sse4.2")]
        unsafe fn fold(self, step: &[u8]) -> Zmm4 {
            let k = _mm512_broadcast_i32x4(pair(const { fold_constants(Self::STEP) }));
            let [d0, d1, d2, d3] = load(step);
            let [x0, x1, x2, x3] = self.0;
            Zmm4([fold512(x0, k, d0), fold512(x1, k, d1), fold512(x2, k, d2), fold512(x3, k, d3)])
        }

        /// Folds the registers into one first, then its four lanes: seven
        /// dependent folds where lane by lane took fifteen.
        #[inline]
        #[target_feature(enable = "avx512f,avx512vl,avx2,vpclmulqdq,pclmulqdq,sse4.2")]
        unsafe fn reduce(self) -> u32 {
            let k = _mm512_broadcast_i32x4(pair(const { fold_constants(64) }));
            let [x0, x1, x2, x3] = self.0;
            let acc = fold512(fold512(fold512(x0, k, x1), k, x2), k, x3);
            let k = pair(FOLD_LANE);
            let mut lanes = _mm512_extracti32x4_epi32(acc, 0);
            lanes = fold128(lanes, k, _mm512_extracti32x4_epi32(acc, 1));
            lanes = fold128(lanes, k, _mm512_extracti32x4_epi32(acc, 2));
            lanes = fold128(lanes, k, _mm512_extracti32x4_epi32(acc, 3));
            to_u32(lanes)
        }
    }

    #[target_feature(enable = "avx2,vpclmulqdq,pclmulqdq,sse4.2")]
    unsafe fn block_ymm(crc: u32, block: &[u8]) -> u32 {
        block_with::<Ymm4>(crc, block)
    }

    #[target_feature(enable = "avx512f,avx512vl,avx2,vpclmulqdq,pclmulqdq,sse4.2")]
    unsafe fn block_zmm(crc: u32, block: &[u8]) -> u32 {
        block_with::<Zmm4>(crc, block)
    }

    /// In every step the vector unit folds `F::STEP` bytes while three
    /// `crc32` streams take 48 bytes each.
    #[inline(always)]
    unsafe fn block_with<F: Folds>(crc: u32, block: &[u8]) -> u32 {
        let layout = const { Layout::of::<F>() };
        assert_eq!(block.len(), layout.block);
        let (vector, scalar) = block.split_at(layout.vector);
        let (s0, scalar) = scalar.split_at(SCALAR_LEN);
        let (s1, scalar) = scalar.split_at(SCALAR_LEN);
        let (s2, tail) = scalar.split_at(SCALAR_LEN);

        let mut steps = vector.chunks_exact(F::STEP);
        let mut x = F::start(steps.next().expect("a block has steps"), crc);
        let (mut c0, mut c1, mut c2) = (0u64, 0u64, 0u64);
        let streams = s0.chunks_exact(SCALAR).zip(s1.chunks_exact(SCALAR)).zip(s2.chunks_exact(SCALAR));
        for ((a, b), c) in streams {
            if let Some(step) = steps.next() {
                x = x.fold(step);
            }
            for ((a, b), c) in a.chunks_exact(8).zip(b.chunks_exact(8)).zip(c.chunks_exact(8)) {
                c0 = _mm_crc32_u64(c0, word(a));
                c1 = _mm_crc32_u64(c1, word(b));
                c2 = _mm_crc32_u64(c2, word(c));
            }
        }
        let v = x.reduce();
        let merged = shift(v, SHIFT_VECTOR) ^ shift(c0 as u32, SHIFT_SCALAR_0) ^ shift(c1 as u32, SHIFT_SCALAR_1);
        _mm_crc32_u64(c2, word(tail) ^ merged) as u32
    }

    /// Four unaligned vector loads of `T`'s width.
    #[inline(always)]
    unsafe fn load<T>(step: &[u8]) -> [T; 4] {
        let width = std::mem::size_of::<T>();
        assert!(step.len() >= 4 * width);
        let at = |i: usize| step.as_ptr().add(i * width).cast::<T>();
        // SAFETY: 4 widths are readable; `read_unaligned` has no alignment needs.
        [at(0).read_unaligned(), at(1).read_unaligned(), at(2).read_unaligned(), at(3).read_unaligned()]
    }

    fn word(bytes: &[u8]) -> u64 {
        u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"))
    }

    #[target_feature(enable = "sse2")]
    fn pair((lo, hi): (u32, u32)) -> __m128i {
        _mm_set_epi64x(i64::from(hi), i64::from(lo))
    }

    #[target_feature(enable = "avx2,vpclmulqdq")]
    fn fold256(x: __m256i, k: __m256i, data: __m256i) -> __m256i {
        let lo = _mm256_clmulepi64_epi128(x, k, 0x00);
        let hi = _mm256_clmulepi64_epi128(x, k, 0x11);
        _mm256_xor_si256(_mm256_xor_si256(lo, hi), data)
    }

    #[target_feature(enable = "avx512f,vpclmulqdq")]
    fn fold512(x: __m512i, k: __m512i, data: __m512i) -> __m512i {
        let lo = _mm512_clmulepi64_epi128(x, k, 0x00);
        let hi = _mm512_clmulepi64_epi128(x, k, 0x11);
        _mm512_ternarylogic_epi64(lo, hi, data, 0x96)
    }

    #[target_feature(enable = "sse2,pclmulqdq")]
    fn fold128(x: __m128i, k: __m128i, data: __m128i) -> __m128i {
        let lo = _mm_clmulepi64_si128(x, k, 0x00);
        let hi = _mm_clmulepi64_si128(x, k, 0x11);
        _mm_xor_si128(_mm_xor_si128(lo, hi), data)
    }

    /// The checksum of a 16-byte lane that folding left.
    #[target_feature(enable = "sse4.2")]
    fn to_u32(lane: __m128i) -> u32 {
        let lo = _mm_crc32_u64(0, _mm_extract_epi64(lane, 0) as u64);
        _mm_crc32_u64(lo, _mm_extract_epi64(lane, 1) as u64) as u32
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

    /// A way to compute the checksum: its name, its block, the function.
    type Path = (String, usize, Box<dyn Fn(u32, &[u8]) -> u32>);

    /// The public function and every kernel this CPU has, each on its own.
    fn every_path() -> Vec<Path> {
        let mut paths: Vec<Path> = vec![("crc32c_append".into(), block_len(), Box::new(crc32c_append))];
        #[cfg(target_arch = "x86_64")]
        for kernel in fast::Kernel::supported() {
            let append = move |crc, bytes: &[u8]| fast::append_with(Some(kernel), crc, bytes);
            paths.push((format!("{kernel:?}"), kernel.block_len(), Box::new(append)));
        }
        paths
    }

    #[test]
    fn this_cpu_checks_the_kernels_it_has() {
        let paths = every_path();
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("vpclmulqdq") {
            assert_eq!(paths.len(), 3, "both kernels run here");
        }
        assert_eq!(kernel_name().starts_with("the crc32c crate"), paths.len() == 1);
    }

    #[test]
    fn whole_blocks_and_their_edges_match_the_crate() {
        for (name, block, append) in every_path() {
            let data = noise(3 * block + 100, 1);
            for len in [0, 1, block - 1, block, block + 1, block + 8, 2 * block, 2 * block + 99, 3 * block] {
                for start in [0, 1, 7] {
                    let bytes = &data[start..start + len];
                    assert_eq!(append(0, bytes), crc32c::crc32c(bytes), "{name}: len {len} start {start}");
                    assert_eq!(append(0xdead_beef, bytes), crc32c::crc32c_append(0xdead_beef, bytes), "{name}");
                }
            }
        }
    }

    #[test]
    fn a_megabyte_matches_the_crate() {
        let data = noise(1 << 20, 2);
        for (name, _, append) in every_path() {
            assert_eq!(append(0, &data), crc32c::crc32c(&data), "{name}");
        }
    }

    proptest! {
        #[test]
        fn any_input_matches_the_crate(seed in any::<u64>(), len in 0usize..70_000, start in 0usize..64, crc in any::<u32>()) {
            let data = noise(start + len, seed);
            let bytes = &data[start..];
            for (name, _, append) in every_path() {
                prop_assert_eq!(append(crc, bytes), crc32c::crc32c_append(crc, bytes), "{}", name);
            }
        }

        #[test]
        fn any_bit_flip_changes_it(seed in any::<u64>(), bit in any::<prop::sample::Index>()) {
            let mut data = noise(40_000, seed);
            let before = crc32c_append(0, &data);
            let bit = bit.index(data.len() * 8);
            data[bit / 8] ^= 1 << (bit % 8);
            for (name, _, append) in every_path() {
                prop_assert_ne!(append(0, &data), before, "{}", name);
            }
        }
    }
}

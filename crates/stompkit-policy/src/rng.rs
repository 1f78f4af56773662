//! Randomness supplied by the caller: the [`RandomSource`] trait and the built-in
//! [`SeededRng`].

/// A source of uniformly distributed 64-bit values.
///
/// The policies never touch a global or thread-local generator: every random draw goes
/// through a `RandomSource` that the caller owns or hands in, so a schedule is reproducible
/// from its seed. Implement it to plug in your own generator (for example one from the `rand`
/// crate, or a scripted sequence in a test).
///
/// ```
/// use stompkit_policy::RandomSource;
///
/// /// Always answers the same value: every jittered delay lands on one point of its range.
/// struct Fixed(u64);
///
/// impl RandomSource for Fixed {
///     fn next_u64(&mut self) -> u64 {
///         self.0
///     }
/// }
///
/// let mut source = Fixed(7);
/// assert_eq!(source.next_u64(), 7);
/// ```
pub trait RandomSource {
    /// Returns the next value; every bit should be uniformly distributed.
    fn next_u64(&mut self) -> u64;
}

impl<R: RandomSource + ?Sized> RandomSource for &mut R {
    fn next_u64(&mut self) -> u64 {
        (**self).next_u64()
    }
}

impl<R: RandomSource + ?Sized> RandomSource for Box<R> {
    fn next_u64(&mut self) -> u64 {
        (**self).next_u64()
    }
}

/// A small, fast, seeded generator (SplitMix64).
///
/// The output sequence for a given seed is part of this crate's stability promise: it does
/// not change between patch releases, so a test that pins the delays of a seed keeps passing.
/// It is not cryptographically secure, and needs not be: it only spreads retries apart.
///
/// ```
/// use stompkit_policy::{RandomSource, SeededRng};
///
/// let mut a = SeededRng::new(42);
/// let mut b = SeededRng::new(42);
/// assert_eq!(a.next_u64(), b.next_u64());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeededRng {
    state: u64,
}

impl SeededRng {
    /// Creates a generator whose sequence is fully determined by `seed`.
    #[must_use]
    pub const fn new(seed: u64) -> Self {
        Self { state: seed }
    }
}

impl RandomSource for SeededRng {
    #[inline]
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// A value in `lo..=hi`, uniform up to a bias below 2^-64 per unit of range (Lemire's
/// multiply-shift without rejection, so exactly one draw). Draws nothing when the range holds
/// a single value, and returns `lo` when `lo > hi`.
#[inline]
pub(crate) fn uniform_inclusive<R: RandomSource + ?Sized>(rng: &mut R, lo: u64, hi: u64) -> u64 {
    if lo >= hi {
        return lo;
    }
    let span = hi - lo;
    let r = rng.next_u64();
    if span == u64::MAX {
        return r;
    }
    // (r * (span + 1)) >> 64 is below span + 1, so it fits in a u64.
    let offset = ((u128::from(r) * u128::from(span + 1)) >> 64) as u64;
    lo + offset
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference outputs of SplitMix64 for seed 0 (Vigna's `splitmix64.c`).
    #[test]
    fn splitmix64_reference_values() {
        let mut rng = SeededRng::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(rng.next_u64(), 0x06C4_5D18_8009_454F);
    }

    struct Scripted(u64);
    impl RandomSource for Scripted {
        fn next_u64(&mut self) -> u64 {
            self.0
        }
    }

    #[test]
    fn uniform_hits_both_ends_and_never_leaves_the_range() {
        assert_eq!(uniform_inclusive(&mut Scripted(0), 10, 20), 10);
        assert_eq!(uniform_inclusive(&mut Scripted(u64::MAX), 10, 20), 20);
        assert_eq!(
            uniform_inclusive(&mut Scripted(u64::MAX), 0, u64::MAX),
            u64::MAX
        );
        assert_eq!(uniform_inclusive(&mut Scripted(5), 7, 7), 7);
        assert_eq!(uniform_inclusive(&mut Scripted(5), 9, 3), 9);
        let mut rng = SeededRng::new(1);
        for _ in 0..10_000 {
            let v = uniform_inclusive(&mut rng, 100, 103);
            assert!((100..=103).contains(&v));
        }
    }

    #[test]
    fn uniform_covers_a_small_range() {
        let mut rng = SeededRng::new(3);
        let mut seen = [false; 4];
        for _ in 0..1_000 {
            seen[uniform_inclusive(&mut rng, 0, 3) as usize] = true;
        }
        assert_eq!(seen, [true; 4]);
    }
}

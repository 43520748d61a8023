//! Instruction sets: which one the kernels run on, chosen once per process at run time.
//!
//! A dependency is compiled the way its user compiles: a plain `cargo build --release`
//! targets baseline x86-64 (SSE2). So the hot kernels are written once, generic over an
//! instruction-set *token* ([`Simd`]), and compiled three times: for AVX-512, for
//! AVX2 + FMA (+ F16C), and for the baseline of the target (`wide`'s vectors, whatever
//! `-C target-cpu` the build gives them; the only level on targets other than x86-64).
//!
//! * The CPU is detected once ([`isa`], cached in a static); `TAPEFLOW_ISA=avx512|avx2|baseline`
//!   forces a level at or below the best one the CPU has (above it, or an unknown value: one
//!   `log::warn!` and the best level).
//! * Each op reads the level once at its entry ([`current`]) and hands it, as a [`Level`], to
//!   every kernel call it makes, also on rayon's worker threads; a kernel call matches on it
//!   once ([`Level::dispatch`]) and runs its whole loop at that level. Nothing dispatches per
//!   vector.
//! * [`with_isa`] runs a closure with a lower level on the calling thread: how the tests run
//!   every level in one binary, and how a program compares levels in one run.
//!
//! A kernel is a type implementing [`Kernel`]: its `run::<S>` is the generic body, marked
//! `#[inline(always)]`. [`Simd::vectorize`] calls it from a `#[target_feature]` function of
//! the token's level, so the body — and every `#[inline(always)]` vector operation it uses —
//! is compiled for that level. Only slices and plain values cross that boundary.

use std::cell::Cell;
use std::fmt;
use std::sync::OnceLock;

mod baseline;
mod vector;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;

#[cfg(target_arch = "x86_64")]
pub(crate) use avx2::Avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) use avx512::Avx512;
pub(crate) use baseline::Baseline;
pub(crate) use vector::{F32s, I32s, Mask, Simd};

/// Lanes of every level's f32 vector. All levels use 16 lanes (one zmm register, two ymm
/// registers, or `wide`'s `f32x16`), so a kernel's blocking — and the order in which its
/// reductions add — is the same on every level: sums and products give the same bits on
/// each, apart from the fused multiply-adds the baseline of a plain build does not have.
pub const LANES: usize = 16;

/// An instruction-set level of the kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Isa {
    /// `wide`'s vectors as the build's target allows (SSE2 for a plain x86-64 build).
    Baseline,
    /// AVX2 with FMA and F16C (x86-64-v3): 16 ymm registers.
    Avx2,
    /// AVX-512 (F, BW, DQ, VL) with FMA and F16C: 32 zmm registers.
    Avx512,
}

impl Isa {
    /// Every level, best first.
    pub const ALL: [Isa; 3] = [Isa::Avx512, Isa::Avx2, Isa::Baseline];

    /// The name `TAPEFLOW_ISA` takes and Display prints.
    pub const fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512",
            Isa::Avx2 => "avx2",
            Isa::Baseline => "baseline",
        }
    }

    /// Parses a `TAPEFLOW_ISA` value (case-insensitive, surrounding spaces ignored).
    pub fn parse(value: &str) -> Option<Isa> {
        let value = value.trim();
        Isa::ALL.into_iter().find(|isa| isa.name().eq_ignore_ascii_case(value))
    }

    /// Whether this CPU (and its operating system) can run the level.
    pub fn is_supported(self) -> bool {
        self <= detected()
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The best level this CPU supports, detected once.
pub fn detected() -> Isa {
    static DETECTED: OnceLock<Isa> = OnceLock::new();
    *DETECTED.get_or_init(detect)
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Isa {
    if Avx512::try_new().is_some() {
        Isa::Avx512
    } else if Avx2::try_new().is_some() {
        Isa::Avx2
    } else {
        Isa::Baseline
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> Isa {
    Isa::Baseline
}

/// The level the kernels of this process run on: the best the CPU has, or the one
/// `TAPEFLOW_ISA` asks for (read once, at the first call).
pub fn isa() -> Isa {
    static CHOSEN: OnceLock<Isa> = OnceLock::new();
    *CHOSEN.get_or_init(|| choose(std::env::var("TAPEFLOW_ISA").ok().as_deref(), detected()))
}

/// The level for a `TAPEFLOW_ISA` value on a CPU whose best level is `best`; warns (once,
/// as this runs once) on a value it cannot honour.
fn choose(value: Option<&str>, best: Isa) -> Isa {
    let Some(value) = value.filter(|v| !v.trim().is_empty()) else { return best };
    match Isa::parse(value) {
        Some(wanted) if wanted <= best => wanted,
        Some(wanted) => {
            log::warn!("TAPEFLOW_ISA={value}: this CPU does not support {wanted}; using {best}");
            best
        }
        None => {
            log::warn!("TAPEFLOW_ISA={value} is not one of avx512, avx2, baseline; using {best}");
            best
        }
    }
}

thread_local! {
    /// A level [`with_isa`] set for this thread.
    static FORCED: Cell<Option<Isa>> = const { Cell::new(None) };
}

/// Runs `f` with the kernels called on this thread at `level` (clamped to what the CPU
/// supports), then restores the previous level, also when `f` panics. Ops started inside
/// `f` carry the level to the worker threads they use, and so do the tape's parallel
/// backward pass and jacobians (tapeflow-tape). Work that `f` hands to other threads itself
/// runs at the process level ([`isa`]) unless it calls `with_isa` there. Returns `f`'s
/// result.
pub fn with_isa<R>(level: Isa, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Isa>);
    impl Drop for Restore {
        fn drop(&mut self) {
            FORCED.with(|c| c.set(self.0));
        }
    }
    let level = level.min(detected());
    let _restore = Restore(FORCED.with(|c| c.replace(Some(level))));
    f()
}

/// A level the CPU supports: the only way kernels are told which code to run. Constructed
/// only here, from detection, so holding one proves its instruction set is available.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level(Isa);

impl Level {
    /// The level as an [`Isa`].
    pub fn isa(self) -> Isa {
        self.0
    }

    /// Runs `f` with this level as the calling thread's (see [`with_isa`]): how work handed
    /// to another thread keeps the level of the thread that made it.
    pub fn enter<R>(self, f: impl FnOnce() -> R) -> R {
        with_isa(self.0, f)
    }

    /// Runs `kernel` compiled for this level.
    #[inline(always)]
    pub(crate) fn dispatch<K: Kernel>(self, kernel: K) -> K::Output {
        match self.token() {
            #[cfg(target_arch = "x86_64")]
            Token::Avx512(s) => s.vectorize(kernel),
            #[cfg(target_arch = "x86_64")]
            Token::Avx2(s) => s.vectorize(kernel),
            Token::Baseline(s) => s.vectorize(kernel),
        }
    }
}

/// A level's token, for code generic over the level that also picks per-level constants
/// (the GEMM's tile shapes).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Token {
    #[cfg(target_arch = "x86_64")]
    Avx512(Avx512),
    #[cfg(target_arch = "x86_64")]
    Avx2(Avx2),
    Baseline(Baseline),
}

impl Level {
    /// The token of this level.
    #[inline(always)]
    pub(crate) fn token(self) -> Token {
        match self.0 {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a `Level` holds `Avx512` only when detection found it (see `current`).
            Isa::Avx512 => Token::Avx512(unsafe { Avx512::new_unchecked() }),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above, for AVX2 + FMA + F16C.
            Isa::Avx2 => Token::Avx2(unsafe { Avx2::new_unchecked() }),
            _ => Token::Baseline(Baseline),
        }
    }
}

/// The level for kernels called now on this thread: a [`with_isa`] level, else [`isa`].
#[inline]
pub fn current() -> Level {
    let forced = FORCED.with(Cell::get);
    // Both sources are clamped to `detected()` when set, so the level is supported.
    Level(forced.unwrap_or_else(isa))
}

/// Every level this CPU supports, best first (the tests run each kernel at each).
pub fn supported_levels() -> Vec<Level> {
    Isa::ALL.into_iter().filter(|isa| isa.is_supported()).map(Level).collect()
}

/// Runs independent FMA chains at the calling thread's level for `iters` steps: the
/// machine's FMA peak, as the perf report and the benchmarks measure it beside the kernels.
/// Returns a value to keep (so the work is not optimized away) and the flops done. Each
/// level runs as many 16-lane chains as its registers hold beside the two constants
/// (AVX-512: 24 zmm; AVX2: 6 pairs of ymm; the baseline as its build allows).
pub fn fma_peak_probe(iters: u64) -> (f32, u64) {
    struct Probe<const CHAINS: usize>(u64);
    impl<const CHAINS: usize> Kernel for Probe<CHAINS> {
        type Output = (f32, u64);
        #[inline(always)]
        fn run<S: Simd>(self, s: S) -> (f32, u64) {
            let (x, y) = (s.splat(std::hint::black_box(0.999_9)), s.splat(std::hint::black_box(1e-4)));
            let mut acc = [s.splat(std::hint::black_box(1.0)); CHAINS];
            for _ in 0..self.0 {
                for a in &mut acc {
                    *a = a.mul_add(x, y);
                }
            }
            let mut total = s.zero();
            for a in acc {
                total += a;
            }
            let total = total.reduce_add();
            (total, self.0 * (CHAINS * LANES * 2) as u64)
        }
    }
    let level = current();
    match level.isa() {
        Isa::Avx512 => level.dispatch(Probe::<24>(iters)),
        Isa::Avx2 => level.dispatch(Probe::<6>(iters)),
        Isa::Baseline if cfg!(target_feature = "avx512f") => level.dispatch(Probe::<24>(iters)),
        Isa::Baseline if cfg!(target_feature = "avx2") => level.dispatch(Probe::<6>(iters)),
        Isa::Baseline => level.dispatch(Probe::<3>(iters)),
    }
}

/// A kernel body, generic over the instruction set. `run` must be `#[inline(always)]`, as
/// must everything it calls that uses vectors, so that all of it is compiled inside the
/// level's `#[target_feature]` function.
pub(crate) trait Kernel {
    /// What the kernel returns.
    type Output;
    /// The body, at level `S`.
    fn run<S: Simd>(self, s: S) -> Self::Output;
}

/// Defines a kernel entry point: `pub fn name(level, args…) -> R` that dispatches once to
/// `body::<S>(s, args…)`. Argument types may borrow with the one lifetime `'a`.
macro_rules! kernel {
    ($(#[$doc:meta])* $vis:vis fn $name:ident<'a>($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? => $body:path;) => {
        $(#[$doc])*
        $vis fn $name<'a>(level: $crate::isa::Level, $($arg: $ty),*) $(-> $ret)? {
            #[allow(non_camel_case_types)]
            struct $name<'a> { $($arg: $ty,)* _life: std::marker::PhantomData<&'a ()> }
            impl<'a> $crate::isa::Kernel for $name<'a> {
                type Output = kernel!(@ret $($ret)?);
                #[inline(always)]
                fn run<S: $crate::isa::Simd>(self, s: S) -> Self::Output {
                    $body(s, $(self.$arg),*)
                }
            }
            level.dispatch($name { $($arg,)* _life: std::marker::PhantomData })
        }
    };
    (@ret) => { () };
    (@ret $ret:ty) => { $ret };
}
pub(crate) use kernel;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_values_fall_back_to_the_best_level() {
        for isa in Isa::ALL {
            assert_eq!(Isa::parse(&isa.to_string()), Some(isa));
        }
        assert_eq!(Isa::parse(" AVX2 "), Some(Isa::Avx2));
        assert_eq!(choose(Some("baseline"), Isa::Avx512), Isa::Baseline);
        assert_eq!(choose(Some("avx2"), Isa::Avx512), Isa::Avx2);
        assert_eq!(choose(Some("avx512"), Isa::Avx2), Isa::Avx2);
        assert_eq!(choose(Some("sse9"), Isa::Avx2), Isa::Avx2);
        assert_eq!(choose(Some(""), Isa::Avx512), Isa::Avx512);
        assert_eq!(choose(None, Isa::Baseline), Isa::Baseline);
    }

    #[test]
    fn with_isa_clamps_nests_and_restores() {
        let outer = current().isa();
        with_isa(Isa::Baseline, || {
            assert_eq!(current().isa(), Isa::Baseline);
            with_isa(Isa::Avx512, || assert_eq!(current().isa(), detected()));
            assert_eq!(current().isa(), Isa::Baseline);
        });
        assert_eq!(current().isa(), outer);
        let caught = std::panic::catch_unwind(|| with_isa(Isa::Baseline, || panic!("inside")));
        assert!(caught.is_err());
        assert_eq!(current().isa(), outer);
    }
}

//! Corpus-driven fuzzing of the decoders that read bytes from another process: the worker
//! frames ([`wire`](crate::process)) and the task encoding ([`format`](crate::remote::format)).
//!
//! Seeds live in the repository, in `fuzz/corpus/<target>/`: valid inputs, one per file. A
//! run mutates them (bit flips, random bytes, truncation, insertion, deletion, splicing two
//! seeds) and feeds every mutant to the decoder, which must answer `Ok` or `Err` — a panic,
//! a hang or a crash is a finding. `PARJOB_FUZZ_ITERS` sets the number of mutants per target
//! (default 20,000: a few seconds, run by `cargo test`); CI runs a longer pass. The seed
//! generator, `write_seed_corpus` (ignored), writes the corpus from real messages.

mod targets;

use std::path::{Path, PathBuf};

/// xorshift64*: reproducible noise without a dependency.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// The corpus directory of `target`.
pub(crate) fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

/// Every seed of `target`, sorted by file name.
pub(crate) fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the seed corpus {} is missing: {e}", dir.display()))
        .map(|entry| entry.expect("a corpus entry").path())
        .collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(f).expect("a seed file"))
        .collect();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

/// Mutants per target.
pub(crate) fn iterations() -> usize {
    std::env::var("PARJOB_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(20_000)
}

/// One mutant of a seed (with another seed at hand for splicing).
pub(crate) fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..=rng.below(3) {
        match rng.below(7) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] = rng.next() as u8;
            }
            2 => out.truncate(rng.below(out.len() + 1)),
            3 => {
                let i = rng.below(out.len() + 1);
                out.insert(i, rng.next() as u8);
            }
            4 if !out.is_empty() => {
                let i = rng.below(out.len());
                out.remove(i);
            }
            5 => {
                // Splice: a prefix of this seed, the rest of the other.
                let cut = rng.below(out.len() + 1);
                let from = rng.below(other.len() + 1);
                out.truncate(cut);
                out.extend_from_slice(&other[from..]);
            }
            _ => {
                // An interesting value over 8 bytes: lengths and counts live there.
                if out.len() >= 8 {
                    let i = rng.below(out.len() - 7);
                    let v: u64 = [0, 1, u64::MAX, u64::MAX / 2, 1 << 32, 255][rng.below(6)];
                    out[i..i + 8].copy_from_slice(&v.to_le_bytes());
                }
            }
        }
    }
    out
}

/// Runs `decode` on `iterations()` mutants of the seeds; returns how many ran.
pub(crate) fn run(target: &str, seed: u64, decode: impl Fn(&[u8])) -> usize {
    let seeds = seeds(target);
    // The seeds themselves first: they must decode without complaint too.
    for s in &seeds {
        decode(s);
    }
    let mut rng = Rng::new(seed);
    let n = iterations();
    for _ in 0..n {
        let a = &seeds[rng.below(seeds.len())];
        let b = &seeds[rng.below(seeds.len())];
        let mutant = mutate(&mut rng, a, b);
        decode(&mutant);
    }
    eprintln!(
        "fuzz {target}: {} inputs ({} seeds, {n} mutants), no finding",
        seeds.len() + n,
        seeds.len()
    );
    seeds.len() + n
}

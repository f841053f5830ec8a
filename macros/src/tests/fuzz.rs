//! The macros must never panic: whatever the tokens, the answer is code or a compile error.
//!
//! Thousands of random token streams (identifiers and keywords of the DSL, every kind of
//! literal, joint and alone punctuation, all four delimiters including the invisible groups
//! `macro_rules!` makes) and random mutations of valid inputs go through every entry point.
//! A small xorshift generator keeps the cases reproducible without a dependency.

use super::tokens;
use crate::ctxt::Ctxt;
use crate::{args, entry, valid};
use proc_macro2::{Delimiter, Group, Ident, Punct, Spacing, Span, TokenStream, TokenTree};
use std::panic::{AssertUnwindSafe, catch_unwind};

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

const IDENTS: &[&str] = &[
    "x",
    "xs",
    "f",
    "for",
    "in",
    "if",
    "else",
    "let",
    "fn",
    "async",
    "const",
    "impl",
    "struct",
    "mod",
    "unsafe",
    "pub",
    "move",
    "return",
    "match",
    "where",
    "self",
    "Some",
    "_",
    "n_jobs",
    "batch_size",
    "pre_dispatch",
    "timeout",
    "verbose",
    "prefer",
    "require",
    "inner_max_num_threads",
    "idle_worker_timeout",
    "colour",
    "parallel",
    "parallel_backend",
    "parjob",
    "bound",
    "main",
];
const RAW_IDENTS: &[&str] = &["type", "n_jobs", "match"];
const LITERALS: &[&str] = &[
    "0",
    "1",
    "-1",
    "4",
    "2.5",
    "-0.0",
    "1e400",
    "99999999999999999999999999999999999999999",
    "4294967296",
    "0u8",
    "1.0f32",
    "0x10",
    "1_000",
    "\"threading\"",
    "\"threadng\"",
    "\"mpi\"",
    "\"auto\"",
    "\"processes\"",
    "\"sharedmem\"",
    "\"threads\"",
    "\"\"",
    "\"\\u{1F600}\\n\"",
    "r#\"raw\"#",
    "'c'",
    "b'x'",
    "b\"x\"",
    "c\"x\"",
    "true",
];
const PUNCTS: &[&str] = &[
    ",", ";", "=", "==", "=>", "-", "!", "@", "#", ":", "::", ".", "..", "..=", "|", "||", "&",
    "*", "<", ">", "?", "+", "->", "$",
];
const DELIMITERS: &[Delimiter] = &[
    Delimiter::Parenthesis,
    Delimiter::Bracket,
    Delimiter::Brace,
    Delimiter::None,
];

fn random_tree(rng: &mut XorShift, depth: usize, out: &mut Vec<TokenTree>) {
    let span = Span::call_site();
    match rng.below(if depth > 0 { 10 } else { 8 }) {
        0..=2 => out.push(Ident::new(rng.pick(IDENTS), span).into()),
        3 => out.push(Ident::new_raw(rng.pick(RAW_IDENTS), span).into()),
        4 | 5 => out.extend(tokens(rng.pick(LITERALS))),
        6 | 7 => {
            let chars: Vec<char> = rng.pick(PUNCTS).chars().collect();
            for (index, &c) in chars.iter().enumerate() {
                let spacing = if index + 1 < chars.len() || rng.below(4) == 0 {
                    Spacing::Joint
                } else {
                    Spacing::Alone
                };
                out.push(Punct::new(c, spacing).into());
            }
        }
        _ => {
            let stream = random_stream(rng, depth - 1, 6);
            out.push(Group::new(rng.pick(DELIMITERS), stream).into());
        }
    }
}

fn random_stream(rng: &mut XorShift, depth: usize, max_len: usize) -> TokenStream {
    let mut trees = Vec::new();
    for _ in 0..rng.below(max_len + 1) {
        random_tree(rng, depth, &mut trees);
    }
    trees.into_iter().collect()
}

const VALID_PARALLEL: &[&str] = &[
    "neg(x) for x in xs",
    "x * 2 for (x, y) in pairs.iter().copied() if x > y",
    r#""threading", n_jobs = 4; f(x) for x in 0..10"#,
    r#"n_jobs = -1, batch_size = "auto", timeout = 2.5, pre_dispatch = "2*n_jobs"; x for x in xs"#,
    r#""loky", idle_worker_timeout = 10, prefer = "processes"; x for Ok(x) | Err(x) in rs"#,
    r#""sequential"; let a = f()?; a + 1"#,
    r#"@bound("threading"); x for x in xs"#,
    "backend(), colour = 1, require = \"sharedmem\"; for x in xs { g(x) }",
];
const VALID_DELAYED: &[&str] = &[
    "neg(i + 1)",
    "math::add::<u8>(a, b)",
    "f()",
    "<T as Tr>::call(x)",
];
const VALID_ARGS: &[&str] = &[
    r#""threading", n_jobs = 4"#,
    r#""loky", idle_worker_timeout = 300, inner_max_num_threads = 2, verbose = 1"#,
    r#"n_jobs = 2, prefer = "threads""#,
    "pick(), anything = 1",
];
const VALID_ITEMS: &[&str] = &[
    "fn f(xs: &[i64]) -> Result<Vec<i64>, E> { parallel!(neg(x) for x in xs.iter().copied()) }",
    "impl S { fn a(&self) { assert!(parallel!(x for x in 0..2).is_ok()); } const fn b() {} }",
    "pub unsafe fn g<T: Copy>(t: T) where T: Send { let _ = parjob::parallel!(x for x in [t]); fn h() {} }",
];

/// Deletes, inserts, swaps, duplicates or regroups tokens, at the top level or inside a group.
fn mutate(rng: &mut XorShift, stream: TokenStream) -> TokenStream {
    let mut trees: Vec<TokenTree> = stream.into_iter().collect();
    for _ in 0..=rng.below(3) {
        let len = trees.len();
        match rng.below(7) {
            0 if len > 0 => {
                trees.remove(rng.below(len));
            }
            1 => {
                let mut new = Vec::new();
                random_tree(rng, 1, &mut new);
                let at = rng.below(len + 1);
                trees.splice(at..at, new);
            }
            2 if len > 1 => {
                let (a, b) = (rng.below(len), rng.below(len));
                trees.swap(a, b);
            }
            3 if len > 0 => {
                let at = rng.below(len);
                let copy = trees[at..len.min(at + 3)].to_vec();
                trees.splice(at..at, copy);
            }
            4 if len > 0 => {
                let at = rng.below(len);
                if let TokenTree::Group(group) = &trees[at] {
                    let inner = mutate(rng, group.stream());
                    trees[at] = Group::new(group.delimiter(), inner).into();
                }
            }
            5 if len > 0 => {
                // Wrap a run of tokens in an invisible group, as `macro_rules!` does.
                let at = rng.below(len);
                let end = len.min(at + 1 + rng.below(3));
                let run: TokenStream = trees.drain(at..end).collect();
                trees.insert(at, Group::new(Delimiter::None, run).into());
            }
            _ if len > 0 => {
                trees.truncate(rng.below(len));
            }
            _ => {}
        }
    }
    trees.into_iter().collect()
}

/// Runs every entry point and phase on `input`; returns a description of the first failure.
fn exercise(input: &TokenStream) -> Result<(), String> {
    let run =
        |name: &str, f: &dyn Fn() -> Result<(), String>| match catch_unwind(AssertUnwindSafe(f)) {
            Ok(result) => result.map_err(|message| format!("{name}: {message}")),
            Err(_) => Err(format!("{name} panicked")),
        };
    run("parallel!", &|| {
        let out = entry::parallel(input.clone());
        let has_errors = out.to_string().contains("compile_error");
        // Without errors a comprehension expands to an expression; the block form carries the
        // user's statements unparsed, so only a `;` in the input excuses a non-expression.
        let is_expr = syn::parse2::<syn::Expr>(out.clone()).is_ok();
        let has_semi = args::split_header(input.clone()).1.is_some();
        if has_errors || is_expr || has_semi {
            Ok(())
        } else {
            Err(format!("not an expression: {out}"))
        }
    })?;
    run("delayed!", &|| {
        let out = entry::delayed(input.clone());
        let ok = out.to_string().contains("compile_error")
            || syn::parse2::<syn::Expr>(out.clone()).is_ok();
        if ok {
            Ok(())
        } else {
            Err(format!("not an expression: {out}"))
        }
    })?;
    run("#[parallel_backend] args", &|| {
        let out = entry::parallel_backend(input.clone(), tokens(VALID_ITEMS[0]));
        if out.is_empty() {
            Err("the item vanished".to_owned())
        } else {
            Ok(())
        }
    })?;
    run("#[parallel_backend] item", &|| {
        let out = entry::parallel_backend(tokens(VALID_ARGS[0]), input.clone());
        let ok = out.to_string().contains("compile_error")
            || syn::parse2::<syn::Item>(out.clone()).is_ok();
        if ok {
            Ok(())
        } else {
            Err(format!("not an item: {out}"))
        }
    })?;
    run("#[parallel_backend] body", &|| {
        let body = Group::new(Delimiter::Brace, input.clone());
        let item: TokenStream = tokens("fn f()")
            .into_iter()
            .chain([TokenTree::Group(body)])
            .collect();
        let _ = entry::parallel_backend(tokens(VALID_ARGS[0]), item);
        Ok(())
    })?;
    run("header phases", &|| {
        for site in [
            valid::Site::Attribute,
            valid::Site::Block,
            valid::Site::Call,
        ] {
            let mut cx = Ctxt::new();
            let raw = args::parse_args(input.clone(), Span::call_site(), &mut cx);
            let _config = valid::check_args(raw, site, &mut cx);
        }
        let _ = args::parse_comprehension(input.clone());
        Ok(())
    })
}

#[test]
fn random_token_streams_never_panic() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for case in 0..3000 {
        let input = random_stream(&mut rng, 3, 12);
        if let Err(failure) = exercise(&input) {
            panic!("case {case}: {failure}\ninput: {input}");
        }
    }
}

/// The seed corpus of the macros, `fuzz/corpus/macros/*.txt`: one input per file.
fn corpus() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/macros");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the seed corpus {} is missing: {e}", dir.display()))
        .map(|entry| entry.expect("a corpus entry").path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| std::fs::read_to_string(f).expect("a seed file"))
        .collect()
}

/// Mutants to run: `PARJOB_FUZZ_ITERS`, or 4,000.
fn iterations() -> usize {
    std::env::var("PARJOB_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(4000)
}

#[test]
fn mutated_valid_inputs_never_panic() {
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    let corpus = corpus();
    assert!(!corpus.is_empty(), "no macro seeds");
    let mut valid: Vec<&str> = [VALID_PARALLEL, VALID_DELAYED, VALID_ARGS, VALID_ITEMS].concat();
    valid.extend(corpus.iter().map(String::as_str));
    for source in &valid {
        if let Err(failure) = exercise(&tokens(source)) {
            panic!("seed: {failure}\ninput: {source}");
        }
    }
    let n = iterations();
    for case in 0..n {
        let source = rng.pick(&valid);
        let input = mutate(&mut rng, tokens(source));
        if let Err(failure) = exercise(&input) {
            panic!("case {case}: {failure}\ninput: {input}");
        }
    }
    eprintln!(
        "fuzz macros: {} inputs ({} seeds, {n} mutants), no finding",
        valid.len() + n,
        valid.len()
    );
}

#[test]
fn valid_inputs_expand_without_errors() {
    for input in VALID_PARALLEL {
        let out = entry::parallel(tokens(input)).to_string();
        assert!(!out.contains("compile_error"), "{input}: {out}");
    }
    for input in VALID_DELAYED {
        let out = entry::delayed(tokens(input)).to_string();
        assert!(!out.contains("compile_error"), "{input}: {out}");
    }
    for args in VALID_ARGS {
        for item in VALID_ITEMS {
            let out = entry::parallel_backend(tokens(args), tokens(item)).to_string();
            assert!(!out.contains("compile_error"), "{args} / {item}: {out}");
        }
    }
}

use super::tokens;
use crate::args::{
    RawBody, RawHeader, parse_args, parse_comprehension, parse_delayed, parse_parallel,
    split_header,
};
use crate::ctxt::Ctxt;
use proc_macro2::Span;
use quote::ToTokens;

fn text(node: &impl ToTokens) -> String {
    node.to_token_stream().to_string()
}

#[test]
fn header_with_backend_and_keys() {
    let mut cx = Ctxt::new();
    let args = parse_args(
        tokens(r#""threading", n_jobs = 4, r#type = 1"#),
        Span::call_site(),
        &mut cx,
    );
    assert!(!cx.has_errors());
    assert_eq!(
        args.backend.as_ref().map(text).as_deref(),
        Some(r#""threading""#)
    );
    let keys: Vec<String> = args.entries.iter().map(|entry| entry.name()).collect();
    assert_eq!(keys, ["n_jobs", "type"]);
    assert_eq!(text(&args.entries[0].value), "4");
}

#[test]
fn header_keys_only_and_expression_backend() {
    let mut cx = Ctxt::new();
    let args = parse_args(
        tokens("n_jobs = -1, verbose = v == 1"),
        Span::call_site(),
        &mut cx,
    );
    assert!(args.backend.is_none());
    assert_eq!(args.entries.len(), 2);
    assert_eq!(text(&args.entries[1].value), "v == 1");

    // `x == y` and `x => y` do not start a key.
    let args = parse_args(tokens("a == b, n_jobs = 2"), Span::call_site(), &mut cx);
    assert_eq!(args.backend.as_ref().map(text).as_deref(), Some("a == b"));
    // Commas inside generics of the backend expression are not separators.
    let args = parse_args(
        tokens("Pool::<A, B>::new(), n_jobs = 2"),
        Span::call_site(),
        &mut cx,
    );
    assert!(args.backend.is_some() && args.entries.len() == 1);
    assert!(!cx.has_errors(), "{:?}", cx.messages());
}

#[test]
fn header_syntax_errors_keep_what_came_before() {
    let mut cx = Ctxt::new();
    let args = parse_args(
        tokens(r#""threading", n_jobs = 2 verbose = 1"#),
        Span::call_site(),
        &mut cx,
    );
    assert_eq!(cx.messages(), ["expected `,`, found `verbose`"]);
    assert!(!args.complete);
    assert_eq!(args.entries.len(), 1);
}

#[test]
fn header_is_split_at_the_first_bare_semicolon() {
    let (header, semi, rest) = split_header(tokens("n_jobs = [0; 3].len() as i32; { a; b }; c"));
    assert_eq!(header.to_string(), "n_jobs = [0 ; 3] . len () as i32");
    assert!(semi.is_some());
    assert_eq!(rest.to_string(), "{ a ; b } ; c");
    let (_, semi, _) = split_header(tokens("f(x) for x in xs"));
    assert!(semi.is_none());
}

#[test]
fn comprehension_parts() {
    let comprehension = parse_comprehension(tokens(
        "f(x, y) for (x, y) in pairs.iter().copied() if x > y",
    ))
    .unwrap();
    assert_eq!(text(&comprehension.expr), "f (x , y)");
    assert_eq!(text(&comprehension.pat), "(x , y)");
    assert_eq!(text(&comprehension.iter), "pairs . iter () . copied ()");
    assert_eq!(
        comprehension.cond.as_ref().map(text).as_deref(),
        Some("x > y")
    );

    let comprehension = parse_comprehension(tokens("x for Ok(x) | Err(x) in results")).unwrap();
    assert!(matches!(comprehension.pat, syn::Pat::Or(_)));
    assert!(comprehension.cond.is_none());
}

#[test]
fn comprehension_errors() {
    let error = |source: &str| {
        parse_comprehension(tokens(source))
            .err()
            .map(|e| e.to_string())
    };
    assert_eq!(
        error("x x in xs").as_deref(),
        Some("expected `for` after the expression, found `x`")
    );
    assert_eq!(
        error("x for x xs").as_deref(),
        Some("expected `in` after the pattern, found `xs`")
    );
    assert_eq!(
        error("x for in xs").as_deref(),
        Some("expected a pattern after `for`, found `in`")
    );
    assert_eq!(
        error("x for x in if c").as_deref(),
        Some("expected an iterator after `in`, found `if`")
    );
    assert_eq!(
        error("for x in xs").as_deref(),
        Some("expected an expression before `for`: a comprehension is `EXPR for PAT in ITER`")
    );
    assert_eq!(
        error("x for x in xs, 1").as_deref(),
        Some("expected `if` or the end of the comprehension, found `,`")
    );
    assert!(
        error("x for x in xs for y in ys")
            .unwrap()
            .starts_with("a comprehension has one `for` clause")
    );
    assert!(
        error("x for x in xs if")
            .unwrap()
            .ends_with("expected a condition after `if`")
    );
}

#[test]
fn parallel_forms() {
    let mut cx = Ctxt::new();
    let parsed = parse_parallel(tokens("x for x in xs"), &mut cx).unwrap();
    assert!(matches!(parsed.header, RawHeader::Absent));
    assert!(matches!(parsed.body, RawBody::Comprehension(_)));

    let parsed = parse_parallel(tokens(r#""threading"; x for x in xs"#), &mut cx).unwrap();
    assert!(matches!(parsed.header, RawHeader::Args(_)));
    assert!(matches!(parsed.body, RawBody::Comprehension(_)));

    // Statements, including a `for` loop, make a block.
    for block in ["let a = 1; a + 1", "for x in xs { f(x) }", "f(); g()", ""] {
        let parsed = parse_parallel(tokens(&format!("n_jobs = 2; {block}")), &mut cx).unwrap();
        assert!(matches!(parsed.body, RawBody::Block(_)), "{block}");
    }

    let parsed = parse_parallel(tokens(r#"@bound("loky"); x for x in xs"#), &mut cx).unwrap();
    assert!(
        matches!(parsed.header, RawHeader::Bound(ref bound) if bound.backend.as_ref().unwrap().value() == "loky")
    );
    let parsed = parse_parallel(tokens("@bound(); x for x in xs"), &mut cx).unwrap();
    assert!(matches!(parsed.header, RawHeader::Bound(ref bound) if bound.backend.is_none()));
    assert!(!cx.has_errors(), "{:?}", cx.messages());
}

#[test]
fn a_lost_for_after_a_header_is_still_a_comprehension() {
    let mut cx = Ctxt::new();
    assert!(parse_parallel(tokens("n_jobs = 2; f(x) x in xs"), &mut cx).is_none());
    assert_eq!(
        cx.messages(),
        ["expected `for` after the expression, found `x`"]
    );
}

#[test]
fn empty_and_odd_parallel_inputs() {
    let mut cx = Ctxt::new();
    assert!(parse_parallel(tokens(""), &mut cx).is_none());
    assert!(parse_parallel(tokens("@nonsense; x for x in xs"), &mut cx).is_none());
    assert_eq!(cx.messages().len(), 2);
    assert_eq!(
        cx.messages()[1],
        "unexpected `@` in the header of `parallel!`"
    );
}

#[test]
fn delayed_calls() {
    let delayed = parse_delayed(tokens("math::add::<u8>(a + 1, b)")).unwrap();
    assert_eq!(text(&delayed.func), "math :: add :: < u8 >");
    assert_eq!(delayed.args.len(), 2);
    assert!(parse_delayed(tokens("f()")).unwrap().args.is_empty());

    let error = |source: &str| parse_delayed(tokens(source)).err().map(|e| e.to_string());
    assert!(
        error("x.len()")
            .unwrap()
            .starts_with("expected a function call `path(args)`, found a method call")
    );
    assert_eq!(
        error("f").as_deref(),
        Some("expected a function call `path(args)`")
    );
    assert_eq!(
        error("f(1), g(2)").as_deref(),
        Some("`delayed!` takes one function call, found `,`")
    );
    assert_eq!(
        error("").as_deref(),
        Some("`delayed!` expects a function call `path(args)`")
    );
}

#[test]
fn a_bound_call_is_always_a_comprehension() {
    let mut cx = Ctxt::new();
    assert!(parse_parallel(tokens("@bound(); foo()"), &mut cx).is_none());
    assert_eq!(
        cx.messages(),
        ["unexpected end of input, expected `for` after the expression"]
    );
}

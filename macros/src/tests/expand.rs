use super::{squash, tokens};
use crate::entry;

fn parallel(source: &str) -> String {
    squash(&entry::parallel(tokens(source)))
}

fn attribute(args: &str, item: &str) -> String {
    squash(&entry::parallel_backend(tokens(args), tokens(item)))
}

fn delayed(source: &str) -> String {
    squash(&entry::delayed(tokens(source)))
}

const P: &str = "::parjob::__private::";

/// An expected expansion, written with `P::` for the private module and spaces for reading.
fn expected(text: &str) -> String {
    text.replace("P::", P)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect()
}

#[test]
fn comprehension_without_header_probes_whether_tasks_can_travel() {
    assert_eq!(
        parallel("neg(x) for x in xs"),
        expected(
            r#"{ #[allow(unused_imports)] use P::{ResultsLocal as _, ResultsViaRef as _, ResultsViaSerde as _, ViaRefItem as _, ViaRefResult as _, ViaSerde as _, ViaShared as _};
   let __parjob_job = P::map_job(xs, |x| neg(x));
   #[allow(clippy::needless_borrow)] let __parjob_remote = (&&&&__parjob_job.probe()).remote_map();
   #[allow(clippy::needless_borrow)] let __parjob_results = (&&&__parjob_job.probe()).result_codec();
   __parjob_job.run(P::Parallel::new(), __parjob_remote, __parjob_results) }"#
        )
    );
}

#[test]
fn comprehension_with_condition_and_header() {
    assert_eq!(
        parallel(
            r#""threading", batch_size = "auto", timeout = 2, pre_dispatch = 4; x * 2 for (x, _) in pairs if x > 0"#
        ),
        expected(
            r#"P::comprehension(
                P::Parallel::new().backend(P::builtin("threading")).n_jobs(-1)
                    .batch_size(P::BatchSize::Auto)
                    .timeout(P::Duration::from_secs_f64(2.0))
                    .pre_dispatch(4usize),
                pairs,
                |(x, _)| if x > 0 { ::core::option::Option::Some(x * 2) } else { ::core::option::Option::None }
            )"#
        )
    );
}

#[test]
fn comprehension_header_keeps_explicit_n_jobs_and_runtime_backends() {
    assert_eq!(
        parallel(r#"backend, n_jobs = 2, colour = "blue", prefer = "processes"; x for x in xs"#),
        expected(
            r#"{ #[allow(unused_imports)] use P::{ResultsLocal as _, ResultsViaRef as _, ResultsViaSerde as _, ViaRefItem as _, ViaRefResult as _, ViaSerde as _, ViaShared as _};
   let __parjob_job = P::map_job(xs, |x| x);
   #[allow(clippy::needless_borrow)] let __parjob_remote = (&&&&__parjob_job.probe()).remote_map();
   #[allow(clippy::needless_borrow)] let __parjob_results = (&&&__parjob_job.probe()).result_codec();
   __parjob_job.run(P::Parallel::new().backend(P::BackendSpec::from(backend)).n_jobs(2)
                    .param("colour", "blue").prefer(P::Prefer::Processes), __parjob_remote, __parjob_results) }"#
        )
    );
}

#[test]
fn or_patterns_get_parentheses() {
    assert!(parallel("v for Ok(v) | Err(v) in rs").contains("|(Ok(v)|Err(v))|"));
}

#[test]
fn bound_comprehension_inherits_the_scope() {
    assert_eq!(
        parallel(r#"@bound(); x for x in xs"#),
        parallel("x for x in xs")
    );
}

#[test]
fn a_process_backend_named_at_compile_time_requires_a_remote_body() {
    assert_eq!(
        parallel(r#"@bound("loky"); f(x) for x in xs"#),
        expected(
            r#"{ let __parjob_items = xs;
                 let __parjob_body = P::remote_map_body(&__parjob_items, |x| f(x));
                 P::require_transferable_items(&__parjob_items);
                 P::require_transferable_map_results(&__parjob_body);
                 #[allow(unused_imports)] use P::{ViaSerde as _, ViaShared as _};
                 #[allow(clippy::needless_borrow)]
                 let __parjob_remote = (&P::PointerProbe(__parjob_body)).remote_map();
                 P::map_job(__parjob_items, __parjob_body).run(P::Parallel::new(), __parjob_remote, ::core::option::Option::None) }"#
        )
    );
}

#[test]
fn block_form() {
    assert_eq!(
        parallel(r#""sequential", n_jobs = 2, require = "sharedmem"; let a = f()?; a + 1"#),
        expected(
            r#"{ let __parjob_scope = P::enter_scope(
                    P::parallel_backend(P::builtin("sequential")).n_jobs(2).require(P::Require::SharedMem));
                 let a = f()?; a + 1 }"#
        )
    );
    assert_eq!(
        parallel("verbose = 1; g()"),
        expected("{ let __parjob_scope = P::enter_scope(P::parallel_config().verbose(1)); g() }")
    );
}

#[test]
fn errors_come_with_the_best_expansion_left() {
    let out = parallel(r#""threadng", n_jobs = 2; x for x in xs"#);
    assert!(out.starts_with("{::core::compile_error!"), "{out}");
    assert!(
        out.contains(&expected("P::Parallel::new().n_jobs(2)")),
        "{out}"
    );
}

#[test]
fn delayed_evaluates_arguments_first() {
    assert_eq!(
        delayed("add(a + 1, b)"),
        expected(
            "{ let __parjob_arg0 = a + 1; let __parjob_arg1 = b;
               #[allow(unused_imports)] use P::{ViaRefItem as _, ViaRefResult as _, ViaSerde as _, ViaShared as _};
               let __parjob_call = P::DelayedCall::new((__parjob_arg0, __parjob_arg1,),
                   move |(__parjob_arg0, __parjob_arg1,)| add(__parjob_arg0, __parjob_arg1));
               #[allow(clippy::needless_borrow)] let __parjob_remote = (&&&&__parjob_call.probe()).remote_map();
               __parjob_call.finish(__parjob_remote) }"
        )
    );
    assert!(
        delayed("answer()").contains(
            "P::DelayedCall::new((),move|()|answer())"
                .replace("P::", P)
                .as_str()
        )
    );
}

#[test]
fn attribute_enters_the_scope_first() {
    assert_eq!(
        attribute(
            r#""threading", n_jobs = 4"#,
            "pub fn f(xs: &[i64]) -> R { let a = 1; a }"
        ),
        expected(
            r#"pub fn f(xs: &[i64]) -> R {
                let __parjob_scope = P::enter_scope(P::parallel_backend(P::builtin("threading")).n_jobs(4));
                let a = 1; a }"#
        )
    );
}

#[test]
fn attribute_binds_headerless_calls_in_the_body_only() {
    let out = attribute(
        r#""loky""#,
        r#"fn f() {
            let a = parallel!(x for x in xs);
            let b = parjob::parallel!(x for x in xs);
            let c = parallel!(n_jobs = 2; x for x in xs);
            assert_eq!(vec![parallel!(y for y in ys)], z);
            let d = other::parallel!(x for x in xs);
            let e = || parallel!(x for x in xs);
            fn nested() { parallel!(x for x in xs); }
            macro_rules! m { () => { parallel!(x for x in xs) } }
        }"#,
    );
    let bound = out.matches(r#"@bound("loky");"#).count();
    assert_eq!(bound, 4, "{out}");
    assert!(out.contains("parallel!(n_jobs=2;xforxinxs)"), "{out}");
    assert!(out.contains("other::parallel!(xforxinxs)"), "{out}");
    assert!(out.contains("fnnested(){parallel!(xforxinxs);}"), "{out}");
    assert!(out.contains("{()=>{parallel!(xforxinxs)}}"), "{out}");
}

#[test]
fn attribute_on_impl_blocks_skips_const_and_own_attributes() {
    let out = attribute(
        r#""sequential""#,
        "impl S { fn a(&self) {} const fn b() {} #[parallel_backend(\"threading\")] fn c() {} }",
    );
    assert_eq!(out.matches("__parjob_scope").count(), 1, "{out}");
}

#[test]
fn a_runtime_backend_binds_without_a_name() {
    let out = attribute("pick()", "fn f() { parallel!(x for x in xs); }");
    assert!(out.contains("parallel!(@bound();xforxinxs)"), "{out}");
    assert!(
        out.contains(&expected(
            "P::parallel_backend(P::BackendSpec::from(pick()))"
        )),
        "{out}"
    );
}

#[test]
fn attribute_errors_emit_the_item_unchanged() {
    let item = "fn f() { parallel!(x for x in xs) }";
    let out = attribute(r#""nope""#, item);
    assert!(out.starts_with("::core::compile_error!"), "{out}");
    assert!(out.ends_with(&squash(&tokens(item))), "{out}");
    let out = attribute(r#""threading""#, "struct S;");
    assert!(out.ends_with("structS;"), "{out}");
}

#[cfg(feature = "mpi")]
#[test]
fn mpi_on_main_expands_like_any_backend_for_now() {
    let out = attribute(r#""mpi""#, "fn main() {}");
    assert_eq!(
        out,
        expected(
            r#"fn main() { let __parjob_scope = P::enter_scope(P::parallel_backend(P::builtin("mpi"))); }"#
        )
    );
}

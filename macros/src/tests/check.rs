use super::{header_errors, tokens};
use crate::ctxt::Ctxt;
use crate::valid::Site;

fn attribute(source: &str) -> Vec<String> {
    header_errors(source, Site::Attribute)
}

fn call(source: &str) -> Vec<String> {
    header_errors(source, Site::Call)
}

#[test]
fn valid_headers_have_no_errors() {
    for header in [
        r#""threading""#,
        r#""sequential", n_jobs = 1, verbose = 10"#,
        r#""loky", n_jobs = -2, idle_worker_timeout = 300, inner_max_num_threads = 2"#,
        r#"n_jobs = 2, prefer = "threads", require = "sharedmem""#,
        r#"my_backend(), colour = "blue", n_jobs = jobs"#,
        r#"registered("dask"), scheduler_address = addr"#,
        r#""threading", prefer = Prefer::Processes, require = requirement"#,
    ] {
        assert_eq!(attribute(header), Vec::<String>::new(), "{header}");
    }
    for header in [
        r#""threading", batch_size = "auto", pre_dispatch = "2*n_jobs", timeout = 2.5"#,
        r#"batch_size = 8, pre_dispatch = 16, timeout = Duration::from_millis(5)"#,
        r#"n_jobs = (4), batch_size = size, timeout = 10, inner_max_num_threads = 1"#,
    ] {
        assert_eq!(call(header), Vec::<String>::new(), "{header}");
    }
}

#[test]
fn backend_names() {
    assert_eq!(
        attribute(r#""threadng""#),
        [
            "unknown backend `threadng`, expected one of `sequential`, `threading`, `loky`, `multiprocessing`, `mpi`\n= help: did you mean `threading`?"
        ]
    );
    assert_eq!(attribute(r#""dask""#).len(), 1);
    assert!(!attribute(r#""dask""#)[0].contains("help"));
    assert_eq!(
        attribute("4"),
        ["expected a backend name string or an expression evaluating to a backend"]
    );
    let mpi = attribute(r#""mpi""#);
    if cfg!(feature = "mpi") {
        assert!(mpi.is_empty());
    } else {
        assert_eq!(mpi, ["backend `mpi` needs the `mpi` feature of `parjob`"]);
    }
}

#[test]
fn unknown_backend_does_not_cascade_into_key_errors() {
    assert_eq!(attribute(r#""nope", anything = 1"#).len(), 1);
}

#[test]
fn literal_values() {
    assert!(attribute(r#""threading", n_jobs = 0"#)[0].starts_with("`n_jobs` cannot be `0`"));
    assert!(attribute(r#""threading", n_jobs = (0)"#)[0].starts_with("`n_jobs` cannot be `0`"));
    assert_eq!(
        attribute("n_jobs = 2.0"),
        ["expected an integer for `n_jobs`, found a float"]
    );
    assert_eq!(
        attribute("n_jobs = 4294967296"),
        ["`n_jobs` must be at most `2147483647`, found `4294967296`"]
    );
    assert_eq!(
        attribute("n_jobs = 99999999999999999999999999999999999999999"),
        ["`n_jobs` is out of range"]
    );
    assert_eq!(
        attribute("verbose = -1"),
        ["`verbose` must be at least `0`, found `-1`"]
    );
    assert_eq!(
        attribute(r#"verbose = "loud""#),
        ["expected an integer for `verbose`, found a string"]
    );
    assert_eq!(
        call("batch_size = 0"),
        [r#"invalid `batch_size` `0`, expected `"auto"` or a positive integer"#]
    );
    assert_eq!(
        call("batch_size = -3"),
        [r#"invalid `batch_size` `-3`, expected `"auto"` or a positive integer"#]
    );
    assert_eq!(
        call(r#"batch_size = "big""#),
        [r#"invalid `batch_size` "big", expected `"auto"` or a positive integer"#]
    );
    assert_eq!(call("pre_dispatch = 0").len(), 1);
    assert_eq!(call("timeout = -1").len(), 1);
    assert_eq!(call("timeout = 0.0").len(), 1);
    assert_eq!(
        call("timeout = 1e999"),
        ["invalid `timeout` `inf`, expected a positive number of seconds or a `Duration`"]
    );
    assert_eq!(
        attribute(r#"prefer = "thread""#),
        [
            "invalid `prefer` value \"thread\", expected `\"threads\"` or `\"processes\"`\n= help: did you mean `\"threads\"`?"
        ]
    );
    assert_eq!(
        attribute(r#"require = "always""#),
        ["invalid `require` value \"always\", expected `\"sharedmem\"`"]
    );
    assert_eq!(
        attribute("require = 1"),
        ["expected `\"sharedmem\"` for `require`, found an integer"]
    );
}

#[test]
fn keys() {
    assert_eq!(
        attribute(r#""threading", n_job = 1"#),
        [
            "unknown key `n_job` for backend `threading`, expected one of `n_jobs`, `verbose`, `prefer`, `require`, `inner_max_num_threads`\n= help: did you mean `n_jobs`?"
        ]
    );
    // A built-in backend's own parameter, listed among the allowed keys.
    assert!(attribute(r#""loky", idle = 1"#)[0].contains("`idle_worker_timeout`"));
    assert!(
        attribute(r#""threading", idle_worker_timeout = 1"#)[0]
            .starts_with("unknown key `idle_worker_timeout`")
    );
    // Run-time backends take parameters, except near misses of common keys.
    assert!(attribute("backend(), verbos = 1")[0].starts_with("unknown key `verbos`"));
    assert!(attribute("backend(), colour = 1").is_empty());
    // Without a backend there is no one to take a parameter.
    assert!(attribute("colour = 1")[0].contains("need the backend named first"));
    assert_eq!(
        attribute(r#""threading", batch_size = 2"#),
        ["`batch_size` applies to one call: put it on a `parallel!` comprehension"]
    );
    assert_eq!(header_errors("timeout = 2", Site::Block).len(), 1);
}

#[test]
fn duplicates_and_combinations() {
    assert_eq!(
        attribute("n_jobs = 2, n_jobs = 3"),
        ["duplicate key `n_jobs`, first set to `2`"]
    );
    assert_eq!(
        attribute("n_jobs = -1, n_jobs = 3"),
        ["duplicate key `n_jobs`, first set to `-1`"]
    );
    assert_eq!(
        attribute("n_jobs = n, r#n_jobs = 3"),
        ["duplicate key `n_jobs`, first set earlier in this header"]
    );
    let conflict = "`prefer = \"processes\"` conflicts with `require = \"sharedmem\"`: shared memory needs threads";
    assert_eq!(
        attribute(r#"prefer = "processes", require = "sharedmem""#),
        [conflict]
    );
    assert_eq!(
        attribute(r#"require = "sharedmem", prefer = "processes""#),
        [conflict]
    );
    assert_eq!(
        attribute(r#""sequential", inner_max_num_threads = 2"#),
        [
            "`inner_max_num_threads` does not apply to the `sequential` backend: it has no workers of its own"
        ]
    );
    assert_eq!(attribute("inner_max_num_threads = 2").len(), 1);
    assert!(call("inner_max_num_threads = 2").is_empty());
}

#[test]
fn every_error_is_reported_at_once() {
    let errors =
        attribute(r#""threadng", n_jobs = 0, batch_size = 2, n_jobs = 1, prefer = "procs""#);
    assert_eq!(errors.len(), 5, "{errors:?}");
}

#[test]
fn empty_headers() {
    assert_eq!(attribute("").len(), 1);
    assert!(attribute("")[0].starts_with("`#[parallel_backend]` needs a backend"));
    assert_eq!(call(""), ["expected a backend or `KEY = VALUE` before `;`"]);
    // A syntax error is not also reported as an empty header.
    assert_eq!(attribute(",").len(), 1);
}

#[test]
fn item_checks() {
    let errors = |source: &str| {
        let mut cx = Ctxt::new();
        let _item = crate::item::check_item(tokens(source), &mut cx);
        cx.messages()
    };
    assert!(errors("fn f() {}").is_empty());
    assert!(errors("pub(crate) unsafe extern \"C\" fn f<T>(x: T) where T: Copy {}").is_empty());
    assert!(
        errors("impl X { fn a(&self) {} const fn b() {} async fn c() {} }")[0]
            .contains("`async fn`")
    );
    assert!(
        errors("async fn f() {}")[0]
            .starts_with("`#[parallel_backend]` cannot be used on an `async fn`")
    );
    assert_eq!(
        errors("const fn f() {}"),
        ["`#[parallel_backend]` cannot be used on a `const fn`"]
    );
    assert_eq!(
        errors("fn f(&self);"),
        ["`#[parallel_backend]` needs a function body to run inside the scope"]
    );
    for item in [
        "struct S;",
        "enum E {}",
        "mod m {}",
        "trait T {}",
        "static X: u8 = 0;",
        "use a::b;",
        "type A = u8;",
    ] {
        assert_eq!(
            errors(item),
            ["`#[parallel_backend]` can only be used on a `fn`, a method or an `impl` block"],
            "{item}"
        );
    }
}

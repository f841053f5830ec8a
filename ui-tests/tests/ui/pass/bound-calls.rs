// The attribute binds the header-less `parallel!` calls in its body, wherever they are in
// it: in closures, in other macros' arguments, in blocks. Nested items keep their own scope.
use parjob::{get_active_backend, parallel, parallel_backend};

fn on_caller_thread(ids: &[std::thread::ThreadId]) -> bool {
    let caller = std::thread::current().id();
    ids.iter().all(|&id| id == caller)
}

#[parallel_backend("sequential")]
fn everywhere() -> Result<(), parjob::Error> {
    // Inside another macro's input.
    assert_eq!(parallel!(x + 1 for x in 0..3)?, [1, 2, 3]);
    assert!(on_caller_thread(
        &parallel!(std::thread::current().id() for _ in 0..4)?
    ));
    // Inside a closure, a nested block, and through the crate path.
    let run = || parjob::parallel!(x for x in 0..2);
    assert_eq!(run()?, [0, 1]);
    {
        let nested: Result<Vec<u8>, parjob::Error> = parallel!(b for b in *b"ok");
        assert_eq!(nested?, b"ok");
    }
    // A nested fn is not part of the body: it sees whatever scope is active when called.
    fn helper() -> String {
        get_active_backend().name().to_owned()
    }
    assert_eq!(helper(), "sequential");
    Ok(())
}

fn main() -> Result<(), parjob::Error> {
    everywhere()
}

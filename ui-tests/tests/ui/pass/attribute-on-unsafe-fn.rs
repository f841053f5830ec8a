use parjob::{parallel, parallel_backend};

/// # Safety
///
/// `ptr` must point to `len` initialised `u32`s that outlive the call.
#[parallel_backend("threading", n_jobs = 2)]
unsafe fn sum_of_squares(ptr: *const u32, len: usize) -> Result<u32, parjob::Error> {
    // SAFETY: the caller promises `ptr` and `len` describe a live slice.
    let items = unsafe { std::slice::from_raw_parts(ptr, len) };
    Ok(parallel!(x * x for x in items.iter().copied())?
        .into_iter()
        .sum())
}

fn main() {
    let data = [1u32, 2, 3];
    // SAFETY: `data` is a live array of three `u32`s.
    let total = unsafe { sum_of_squares(data.as_ptr(), data.len()) };
    assert_eq!(total.unwrap(), 14);
}

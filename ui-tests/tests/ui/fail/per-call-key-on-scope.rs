use parjob::{parallel, parallel_backend};

#[parallel_backend("threading", batch_size = 4)]
fn batched() {}

fn main() {
    parallel!("threading", timeout = 10, pre_dispatch = "all";
        let _x = 1;
    );
}

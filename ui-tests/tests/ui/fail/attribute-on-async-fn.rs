use parjob::parallel_backend;

#[parallel_backend("threading")]
async fn fetch() {}

struct Client;

#[parallel_backend("threading")]
impl Client {
    fn sync_method(&self) {}

    async fn async_method(&self) {}
}

fn main() {}

//! `ximagepipeline_fuzz::UploadRoute::upload` on libFuzzer's inputs: multipart bodies.
#![no_main]

use std::sync::LazyLock;

use ximagepipeline_fuzz::UploadRoute;

static ROUTE: LazyLock<UploadRoute> = LazyLock::new(UploadRoute::new);

libfuzzer_sys::fuzz_target!(|body: &[u8]| ROUTE.upload(body));

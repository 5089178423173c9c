//! `ximagepipeline_fuzz::probe` on libFuzzer's inputs (what it checks is said there).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ximagepipeline_fuzz::probe(data));

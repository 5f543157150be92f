#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rtmpsniff::fuzzing::capture_file(data));

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rtmpsniff::fuzzing::decode_frame(data));

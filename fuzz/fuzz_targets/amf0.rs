#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rtmpsniff::fuzzing::amf0(data));

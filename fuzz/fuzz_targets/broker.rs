#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stompkit_testkit::fuzzing::drive(data));

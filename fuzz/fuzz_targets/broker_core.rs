//! The broker's protocol core driven by operations from several
//! connections (frames built from the input or decoded from it by the real
//! codec, opens, closes, time, the journal's durable watermark), with every
//! cross-reference checked after each step: `mq_broker::fuzzing`.
//!
//! `cd fuzz && cargo +nightly fuzz run broker_core -- -max_total_time=600`
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mq_broker::fuzzing::drive_core(data);
});

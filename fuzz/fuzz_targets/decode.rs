//! Feeds arbitrary bytes to the decoder in chunks whose sizes come from the
//! input itself. It must never panic; every decoded frame must re-encode and
//! decode to itself.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use mq_protocol::Codec;
use tokio_util::codec::{Decoder, Encoder};

fuzz_target!(|data: &[u8]| {
    let (chunk, data) = match data.split_first() {
        Some((c, rest)) => (usize::from(*c).max(1), rest),
        None => return,
    };
    let mut codec = Codec::new(64 * 1024);
    let mut buf = BytesMut::new();
    for part in data.chunks(chunk) {
        buf.extend_from_slice(part);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => {
                    let mut out = BytesMut::new();
                    if codec.encode(&frame, &mut out).is_ok() {
                        let again = codec.decode(&mut out).expect("re-decode");
                        assert_eq!(again.as_ref(), Some(&frame));
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});

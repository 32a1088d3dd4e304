//! Any bytes given to the frame decoder yield a message or a typed error, never a panic; a
//! message that decodes re-encodes to the same frame.
#![no_main]

use flock_protocol::wire::{self, ClientMessage, ServerMessage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = wire::frame_len(data);
    if let Ok(m) = wire::decode::<ClientMessage>(data) {
        assert_eq!(wire::encode(&m).ok().as_deref(), Some(data));
    }
    if let Ok(m) = wire::decode::<ServerMessage>(data) {
        assert_eq!(wire::encode(&m).ok().as_deref(), Some(data));
    }
});

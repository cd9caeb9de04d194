//! `keyfront::config::parse` on any text: a configuration or a clean error naming the
//! problem, never a panic (the error's line number slices the text at the error's span).
#![no_main]

use keyfront::config::{parse, SlotKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Configuration files are read with `read_to_string`: only UTF-8 reaches the parser.
    let Ok(text) = std::str::from_utf8(data) else { return };
    match parse(text) {
        Ok(slots) => {
            assert!(!slots.is_empty(), "an accepted configuration without slots");
            for (i, slot) in slots.iter().enumerate() {
                assert!(slots[i + 1..].iter().all(|s| s.id != slot.id), "slot id {} twice", slot.id);
                match &slot.kind {
                    SlotKind::Soft { kdf_iterations, .. } => {
                        assert!(*kdf_iterations >= keyfront::backend::soft::MIN_KDF_ITERATIONS)
                    }
                    SlotKind::Pkcs11(p) => assert!(p.max_sessions >= 1),
                    // An empty region or address passes here; the slot refuses it when made.
                    SlotKind::AwsKms(_) | SlotKind::VaultTransit(_) => {}
                }
            }
        }
        Err(message) => assert!(!message.is_empty()),
    }
});

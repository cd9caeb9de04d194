//! Eight threads, each with its own session on one token, doing AES-GCM and key generation.
mod common;
use common::*;

use std::thread;

const THREADS: usize = 8;
const ROUNDS: usize = 30;
const TOKEN_KEY_EVERY: usize = 10;

/// Whether the workers make token keys too. SoftHSM2 2.6's file object store fails token
/// object creation now and then (CKR_GENERAL_ERROR) while other sessions search the token
/// (reproduced against SoftHSM2 directly, without keyfront): on a forwarded slot the workers
/// make session keys only.
fn token_keys() -> bool {
    backend().is_soft()
}

struct Sample {
    iv: Vec<u8>,
    aad: Vec<u8>,
    pt: Vec<u8>,
    ct: Vec<u8>,
}

fn worker(slot: CK_SLOT_ID, t: usize, shared: CK_OBJECT_HANDLE) -> Vec<Sample> {
    let s = open(slot, true).unwrap();
    assert_eq!(state(s), CKS_RW_USER_FUNCTIONS, "thread {t}: new session is not logged in");
    let mut out = vec![];
    for i in 0..ROUNDS {
        let token = token_keys() && i % TOKEN_KEY_EVERY == 0;
        let label = if token { "thread-token-key".to_string() } else { format!("t{t}-k{i}") };
        let k = gen_aes(s, [16, 24, 32][i % 3], &[ab(CKA_TOKEN, token), av(CKA_LABEL, &label)])
            .unwrap_or_else(|e| panic!("thread {t} round {i}: keygen {e:?}"));
        let pt = random(s, 1 + (i * 37 + t * 11) % 300).unwrap();
        let iv = random(s, 12).unwrap();
        let aad = format!("thread {t} round {i}").into_bytes();
        let m = Mech::gcm(&iv, &aad, 128);

        let ct = encrypt(s, &m, k, &pt).unwrap_or_else(|e| panic!("thread {t} round {i}: encrypt {e:?}"));
        assert_eq!(ct.len(), pt.len() + 16);
        assert_eq!(decrypt(s, &m, k, &ct).unwrap(), pt, "thread {t} round {i}");
        assert_eq!(decrypt_parts(s, &m, k, &chunks(&ct, ODD)).unwrap(), pt, "thread {t} round {i} multi-part");

        let ct = encrypt_parts(s, &m, shared, &chunks(&pt, ODD)).unwrap();
        assert_eq!(decrypt(s, &m, shared, &ct).unwrap(), pt, "thread {t} round {i} shared key");
        if !token {
            assert_eq!(find_label(s, &label), vec![k]);
            destroy(s, k).unwrap();
        }
        out.push(Sample { iv, aad, pt, ct });
    }
    close(s).unwrap();
    out
}

#[test]
fn eight_threads_gcm_and_keygen() {
    let slot = fx().token();
    let main = user_session(slot);
    if !token_keys() {
        skip_note("SoftHSM2 2.6 fails concurrent token object creation (CKR_GENERAL_ERROR): session keys only");
    }
    let shared = gen_aes(main, 32, &[ab(CKA_TOKEN, true), av(CKA_LABEL, "shared")]).unwrap();

    let samples: Vec<Vec<Sample>> = thread::scope(|sc| {
        let handles: Vec<_> = (0..THREADS).map(|t| sc.spawn(move || worker(slot, t, shared))).collect();
        handles.into_iter().map(|h| h.join().expect("worker thread panicked")).collect()
    });

    // Every ciphertext made under the shared key in any thread decrypts in the main session.
    for (t, list) in samples.iter().enumerate() {
        assert_eq!(list.len(), ROUNDS);
        for (i, x) in list.iter().enumerate() {
            let m = Mech::gcm(&x.iv, &x.aad, 128);
            assert_eq!(decrypt(main, &m, shared, &x.ct).unwrap(), x.pt, "thread {t} sample {i}");
        }
    }
    let token_keys_made = token_keys();
    let token_keys = find_label(main, "thread-token-key");
    assert_eq!(token_keys.len(), if token_keys_made { THREADS * ROUNDS.div_ceil(TOKEN_KEY_EVERY) } else { 0 });
    let distinct: std::collections::BTreeSet<_> = token_keys.iter().collect();
    assert_eq!(distinct.len(), token_keys.len(), "duplicate object handles");
    // Session keys were all destroyed again; only the shared and token keys remain.
    assert_eq!(find(main, &[au(CKA_CLASS, CKO_SECRET_KEY)]).unwrap().len(), token_keys.len() + 1);
    close(main).unwrap();
}

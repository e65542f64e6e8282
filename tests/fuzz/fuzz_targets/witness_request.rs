//! The witness's inputs: an add-checkpoint request, a cosigner key and a cosigned note are
//! parsed or refused, never a panic; a witness deciding a hostile request never cosigns a
//! checkpoint its trusted log key did not sign, and its state only grows.
#![no_main]

use std::collections::BTreeMap;

use enclave_tlog::{AddCheckpoint, Cosigner, CosignerKey, Signer, Witness};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = CosignerKey::parse(text);
    let log = Signer::from_seed("enclave-domain/fuzz", [1; 32]).expect("a signer");
    let cosigner = Cosigner::from_seed("authority.example/fuzz", [2; 32]).expect("a cosigner");
    let key = cosigner.key();
    let _ = key.verify(text);
    let mut w = Witness::new(cosigner, vec![log.verifier()], BTreeMap::new());
    if let Ok(req) = AddCheckpoint::parse(text) {
        // Round trip.
        assert_eq!(AddCheckpoint::parse(&req.encode()).as_ref(), Ok(&req));
        if let Ok(line) = w.add_checkpoint(&req, 1) {
            // Cosigned: then the log key signed it, and the cosignature verifies.
            assert!(log.verifier().open(&req.checkpoint).is_ok());
            assert!(key.verify(&format!("{}{line}", req.checkpoint)).is_ok());
        }
    }
});

//! Any bytes as a control byte plus batch: control-byte decoding, batch
//! extraction (zero-terminated, at most 16, never past the announced total)
//! and decoding of every extracted message.
#![no_main]

use bes2600_core::{sdio, wsm};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let toggle = data[1] & 1 != 0;
    let body = &data[2..];
    let total = match sdio::decode_ctrl_byte(data[0], toggle) {
        sdio::Ctrl::Pending(n) => n.min(body.len()),
        _ => body.len(),
    };
    if let Ok(batch) = sdio::extract(body, total) {
        assert!(batch.len() <= sdio::RX_BATCH_MAX);
        let mut end = 0;
        for i in 0..batch.len() {
            let (start, len) = batch.span(i);
            assert!(start >= end && start + len <= total);
            end = start + len;
            let _ = wsm::decode(batch.msg(body, i));
        }
    }
});

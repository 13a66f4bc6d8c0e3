//! Any bytes as a control word plus batch: control-word decoding, batch
//! extraction and decoding of every extracted message.
#![no_main]

use bes2600_core::{sdio, wsm};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 5 {
        return;
    }
    let raw = [data[0], data[1], data[2], data[3]];
    let toggle = data[4] & 1 != 0;
    let body = &data[5..];
    let _ = sdio::decode_ctrl_byte(data[0], toggle);
    if let Ok(w) = sdio::decode_ctrl_word(raw, toggle) {
        if let Ok(batch) = sdio::extract(body, usize::from(w.total_len), Some(w.count)) {
            assert_eq!(batch.len(), usize::from(w.count));
            for m in batch.iter(body) {
                let _ = wsm::decode(m);
            }
        }
    }
    // The one-byte-control path: read until a zero length or the end.
    if let Ok(batch) = sdio::extract(body, body.len(), None) {
        assert!(batch.len() <= sdio::RX_BATCH_MAX);
        for m in batch.iter(body) {
            let _ = wsm::decode(m);
        }
    }
});

//! Any bytes as one WSM message from the chip: typed errors, no panic, and
//! whatever decodes is internally consistent.
#![no_main]

use bes2600_core::wsm;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((mid, inc)) = wsm::decode(data) {
        let (len, hdr) = wsm::parse_header(data).expect("decode implies a valid header");
        assert_eq!(hdr, mid);
        assert!(len <= data.len() && len <= wsm::MSG_LEN_MAX);
        if let wsm::Incoming::MultiTxConfirm(m) = inc {
            assert_eq!(m.iter().count(), m.len());
        }
    }
    let _ = wsm::releases_buffer(data);
});

//! Opening stored sealed values (secrets at rest): whatever a damaged or hostile row
//! holds, opening answers an error, never a panic; and what is sealed opens again.
#![no_main]

use hookd_core::sealed::SealingKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = SealingKey::from_base64("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=").unwrap();
    let text = String::from_utf8_lossy(data);
    let _ = key.open(&text, "endpoint/ep_1/secret");
    let _ = SealingKey::from_base64(&text);
    let sealed = key.seal(data, "endpoint/ep_1/secret");
    assert_eq!(key.open(&sealed, "endpoint/ep_1/secret").unwrap(), data);
});

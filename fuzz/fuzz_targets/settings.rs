//! The value parsers configuration and the API share: durations (every `*_timeout`,
//! `retry_schedule`), cron schedules, endpoint URLs and headers, throttle rates.
#![no_main]

use hookd_core::retry::RetrySchedule;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = humantime::parse_duration(text);
    if let Ok(schedule) = text.parse::<RetrySchedule>() {
        for n in 0..=schedule.len() + 1 {
            let _ = schedule.delay_after(n);
        }
    }
    let _ = hookd_core::ingest::verify::check_schedule(text);
    let _ = hookd_core::endpoint_url::EndpointUrl::from_stored(text);
    if let Some((name, value)) = text.split_once(':') {
        let _ = hookd_core::endpoint_headers::validate(name, value);
    }
});

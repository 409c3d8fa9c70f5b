//! A configuration file as an operator writes it, or mistypes it: the TOML read over
//! the built-in defaults, every setting typed and checked (`hookd_config`). A
//! configuration or an error naming the setting is all it may give: no panic, whatever
//! the file holds. What loads must print (redacted) as a file that loads again to the
//! same settings, as `hookd config` promises.
#![no_main]

use hookd_config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = Config::from_toml(text) else {
        return;
    };
    let _ = config.database();
    let _ = config.public_url();
    let _ = config.transform_threads();
    let shown = config.to_redacted_toml();
    // Redaction replaces keys and passwords; without them the printed file is the
    // configuration itself.
    let redacted =
        !config.secret_key.is_empty() || !config.secret_key_previous.is_empty() || shown.contains("********");
    if !redacted {
        let again = Config::from_toml(&shown)
            .unwrap_or_else(|e| panic!("the printed configuration does not load: {e}\n{shown}"));
        assert_eq!(again.to_redacted_toml(), shown, "printing is not stable");
    }
});

//! What the notification tests share.

pub mod smtp;

/// Whether `python3` can import `module`. When it cannot, the test says so and is
/// skipped — unless `HOOKD_TEST_NOTIFY=required` (as in CI), which makes it a failure.
pub fn python_has(module: &str, what: &str) -> bool {
    let installed = std::process::Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        assert!(
            std::env::var("HOOKD_TEST_NOTIFY").as_deref() != Ok("required"),
            "HOOKD_TEST_NOTIFY=required but python3 cannot import {module} (pip install {module})"
        );
        eprintln!("note: {what} was NOT tested (pip install {module})");
    }
    installed
}

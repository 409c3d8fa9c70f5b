//! "Copy as curl": a shell command that sends a received request again, byte for byte.

/// Headers a client sets itself or that describe one hop only.
const SKIPPED: &[&str] = &[
    "host",
    "content-length",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
    "proxy-connection",
];

/// `s` as one single-quoted shell word.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The command: `curl -X METHOD URL -H ... --data-raw BODY`, or for a body that is not
/// UTF-8 text (or holds a NUL, which no shell argument can), the body in base64 piped
/// through `base64 -d` to `--data-binary @-`.
pub fn command(url: &str, method: &str, headers: &[(String, String)], body: &[u8]) -> String {
    let mut parts = vec![format!("curl -sS -X {} {}", quote(method), quote(url))];
    for (name, value) in headers {
        if SKIPPED.contains(&name.to_ascii_lowercase().as_str()) {
            continue;
        }
        parts.push(format!("-H {}", quote(&format!("{name}: {value}"))));
    }
    let text = std::str::from_utf8(body).ok().filter(|t| !t.contains('\0'));
    match (body.is_empty(), text) {
        (true, _) => parts.join(" \\\n  "),
        (false, Some(text)) => {
            parts.push(format!("--data-raw {}", quote(text)));
            parts.join(" \\\n  ")
        }
        (false, None) => {
            use base64::Engine as _;
            let encoded = base64::engine::general_purpose::STANDARD.encode(body);
            parts.push("--data-binary @-".to_owned());
            format!(
                "printf %s {} | base64 -d | {}",
                quote(&encoded),
                parts.join(" \\\n  ")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_survive_and_hop_headers_are_dropped() {
        let cmd = command(
            "http://h/in/t?a=1",
            "POST",
            &[
                ("content-type".into(), "application/json".into()),
                ("host".into(), "h".into()),
                ("x-evil".into(), "it's $(rm -rf /)".into()),
            ],
            br#"{"q":"it's"}"#,
        );
        assert!(cmd.contains(r"-H 'x-evil: it'\''s $(rm -rf /)'"), "{cmd}");
        assert!(cmd.contains(r#"--data-raw '{"q":"it'\''s"}'"#), "{cmd}");
        assert!(!cmd.contains("host:"));
    }

    #[test]
    fn binary_bodies_go_through_base64() {
        let cmd = command("http://h/in/t", "PUT", &[], &[0, 159, 255]);
        assert!(cmd.starts_with("printf %s 'AJ//' | base64 -d | curl"), "{cmd}");
        assert!(cmd.ends_with("--data-binary @-"));
    }
}

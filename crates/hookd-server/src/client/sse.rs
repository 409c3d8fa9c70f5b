//! Reading a server-sent event stream (the subset hookd sends: `event:`, `data:`,
//! comments), chunk by chunk as it arrives.

/// One event: its name (`message` when unnamed) and data (lines joined by `\n`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

/// Splits the bytes of a stream into events; a comment (a heartbeat) is answered as
/// `None` so the reader knows the stream is alive.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
}

/// The longest event kept while waiting for its end: more is a broken stream.
const MAX_EVENT: usize = 64 * 1024 * 1024;

impl SseParser {
    /// Adds `chunk` and returns the events (and heartbeats, as `None`) it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Option<SseEvent>>, String> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some((end, skip)) = find_blank_line(&self.buf) {
            let block: Vec<u8> = self.buf.drain(..end + skip).take(end).collect();
            let text = String::from_utf8_lossy(&block);
            let (mut event, mut data, mut any) = (String::new(), Vec::new(), false);
            for line in text.lines() {
                if line.starts_with(':') {
                    continue;
                }
                let (field, value) = match line.split_once(':') {
                    Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                    None => (line, ""),
                };
                match field {
                    "event" => event = value.to_owned(),
                    "data" => {
                        data.push(value.to_owned());
                        any = true;
                    }
                    _ => {}
                }
            }
            if any {
                out.push(Some(SseEvent {
                    event: if event.is_empty() { "message".into() } else { event },
                    data: data.join("\n"),
                }));
            } else {
                out.push(None);
            }
        }
        if self.buf.len() > MAX_EVENT {
            return Err("the event stream sent an event larger than 64 MiB".into());
        }
        Ok(out)
    }
}

/// Where the first blank line (`\n\n` or `\r\n\r\n`) starts, and its length.
fn find_blank_line(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| (i, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn events_split_across_chunks() {
        let mut p = SseParser::default();
        assert!(p.push(b"event: ready\nda").unwrap().is_empty());
        let got = p
            .push(b"ta: {\"a\":1}\n\n: heartbeat\n\ndata: x\ndata: y\n\n")
            .unwrap();
        assert_eq!(
            got,
            vec![
                Some(SseEvent {
                    event: "ready".into(),
                    data: "{\"a\":1}".into()
                }),
                None,
                Some(SseEvent {
                    event: "message".into(),
                    data: "x\ny".into()
                }),
            ]
        );
        assert_eq!(p.push(b"event: a\r\ndata: 1\r\n\r\n").unwrap().len(), 1);
    }
}

//! The server-sent-event parser of streamed answers: takes bytes as they arrive, in reads of
//! any size, and gives back each event's data.

/// Splits a byte stream into SSE events and returns each event's `data` (multi-line data
/// joined with `\n`). Fields other than `data` (`event`, `id`, `retry`) and comments are
/// skipped; a partial line waits for the next bytes.
#[derive(Debug, Default)]
pub struct SseParser {
    buffer: Vec<u8>,
    data: Option<String>,
}

impl SseParser {
    /// Feeds `bytes` and returns the events they completed.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        let mut start = 0;
        while let Some(pos) = self.buffer[start..].iter().position(|b| *b == b'\n') {
            let end = start + pos;
            let mut line = &self.buffer[start..end];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            if line.is_empty() {
                if let Some(data) = self.data.take() {
                    events.push(data);
                }
            } else if let Some(value) = line.strip_prefix(b"data:") {
                let value = value.strip_prefix(b" ").unwrap_or(value);
                let value = String::from_utf8_lossy(value);
                match &mut self.data {
                    Some(data) => {
                        data.push('\n');
                        data.push_str(&value);
                    }
                    None => self.data = Some(value.into_owned()),
                }
            }
            start = end + 1;
        }
        self.buffer.drain(..start);
        events
    }

    /// The event left when the stream ended without its closing blank line.
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.buffer);
        if !rest.is_empty() {
            self.push(&rest);
            self.push(b"\n");
        }
        self.data.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_reads_are_reassembled() {
        let mut p = SseParser::default();
        assert!(p.push(b"data: {\"a\"").is_empty());
        assert_eq!(p.push(b":1}\n\ndata: [DO"), vec!["{\"a\":1}".to_owned()]);
        assert_eq!(p.push(b"NE]\r\n\r\n"), vec!["[DONE]".to_owned()]);
    }

    #[test]
    fn comments_and_other_fields_are_skipped_and_multiline_data_joined() {
        let mut p = SseParser::default();
        let events = p.push(b": keep-alive\nevent: x\nid: 3\ndata:a\ndata: b\n\ndata: c\n\n");
        assert_eq!(events, vec!["a\nb".to_owned(), "c".to_owned()]);
    }

    #[test]
    fn an_unterminated_last_event_is_returned_at_the_end() {
        let mut p = SseParser::default();
        assert!(p.push(b"data: tail").is_empty());
        assert_eq!(p.finish().as_deref(), Some("tail"));
        assert_eq!(p.finish(), None);
    }
}

#[cfg(test)]
#[path = "sse_proptests.rs"]
mod proptests;
